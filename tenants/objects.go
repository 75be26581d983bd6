package tenants

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// QuotaName is the name of the worker namespace's ResourceQuota.
const QuotaName = "cyclone-quota"

// Kinds are the kinds of every object Provision may write.
var Kinds = []schema.GroupVersionKind{
	corev1.SchemeGroupVersion.WithKind("Namespace"),
	corev1.SchemeGroupVersion.WithKind("ResourceQuota"),
	corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"),
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"),
	rbacv1.SchemeGroupVersion.WithKind("Role"),
	rbacv1.SchemeGroupVersion.WithKind("RoleBinding"),
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
}

// MetadataAddresses are the cloud metadata services, which hand out the
// node's cloud credentials to whoever asks from the node: the worker
// NetworkPolicy keeps stage Pods from them. 169.254.169.254 serves AWS,
// Azure, GCP and most others; fd00:ec2::254 is AWS's IPv6 address. The
// rest of the link-local range stays open: node-local DNS caches listen
// there.
var MetadataAddresses = []string{"169.254.169.254/32", "fd00:ec2::254/128"}

// workerNetworkPolicy is the NetworkPolicy of a worker namespace. Stage
// Pods run pull request code, so they may be reached only from their own
// namespace, never from another tenant's, and may reach anything but the
// cloud metadata services. Network policies add up: a platform team
// relaxes either rule with a policy of its own in the namespace. Only a
// network plugin that implements NetworkPolicy enforces it.
func workerNetworkPolicy(meta metav1.ObjectMeta) *networkingv1.NetworkPolicy {
	anywhere := func(cidr, except string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: []string{except}}}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta(networkingv1.SchemeGroupVersion, "NetworkPolicy"),
		ObjectMeta: meta,
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				// Pods of every namespace: some plugins match IP blocks
				// only outside the cluster's Pods.
				To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}},
			}, {
				To: []networkingv1.NetworkPolicyPeer{
					anywhere("0.0.0.0/0", MetadataAddresses[0]),
					anywhere("::/0", MetadataAddresses[1]),
				},
			}},
		},
	}
}

// ControlObjects returns what a tenant needs on the control cluster: the
// namespace of its Cyclone objects.
func ControlObjects(t *gyrev1alpha1.Tenant) []*unstructured.Unstructured {
	return []*unstructured.Unstructured{namespace(t, convention.Namespace(t.Name))}
}

// DefaultStorageSize is the size of the tenant PVC of a Tenant that sets
// no spec.storage, Cyclone's default.
var DefaultStorageSize = resource.MustParse("10Gi")

// Storage is the tenant PVC a Tenant gets: its spec.storage, or
// DefaultStorageSize in the cluster's default StorageClass. Every tenant
// gets one, because every run of the tenant mounts it: without it, stage
// Pods could never be scheduled.
func Storage(t *gyrev1alpha1.Tenant) gyrev1alpha1.TenantStorage {
	if t.Spec.Storage != nil {
		return *t.Spec.Storage
	}
	return gyrev1alpha1.TenantStorage{Size: DefaultStorageSize}
}

// PodSecurity is the Pod Security level of a tenant's Pods: its
// spec.podSecurity, baseline by default. A value the CRD should have
// refused counts as restricted, the strictest.
func PodSecurity(t *gyrev1alpha1.Tenant) string {
	level, err := podsecurity.ParseLevel(t.Spec.PodSecurity)
	if err != nil {
		return podsecurity.Restricted
	}
	return level
}

// workerRules are the rights the worker ServiceAccount gets in its
// namespace: none but those the Tenant asks for. Stage results travel in
// termination messages, and resolvers get their Secrets mounted, so stage
// Pods need no API access of their own.
func workerRules(t *gyrev1alpha1.Tenant) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	if slices.Contains(t.Spec.WorkerAccess, gyrev1alpha1.WorkerAccessPatchPods) {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "patch"}})
	}
	if slices.Contains(t.Spec.WorkerAccess, gyrev1alpha1.WorkerAccessReadSecrets) {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})
	}
	return rules
}

// WorkerObjects returns what a tenant needs on each execution cluster, in
// apply order: the worker namespace, then its ResourceQuota (when the
// Tenant sets a quota), PVC (see Storage), ServiceAccount,
// NetworkPolicy, and Role and RoleBinding (when the Tenant grants the
// worker any access).
func WorkerObjects(t *gyrev1alpha1.Tenant) ([]*unstructured.Unstructured, error) {
	ns := convention.WorkerNamespace(t.Name)
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels(t.Name)}
	}
	typed := []runtime.Object{}
	if len(t.Spec.Quota) > 0 {
		typed = append(typed, &corev1.ResourceQuota{
			TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ResourceQuota"),
			ObjectMeta: meta(QuotaName),
			Spec:       corev1.ResourceQuotaSpec{Hard: t.Spec.Quota},
		})
	}
	{
		s := Storage(t)
		typed = append(typed, &corev1.PersistentVolumeClaim{
			TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "PersistentVolumeClaim"),
			ObjectMeta: meta(convention.PVCName(t.Name)),
			Spec: corev1.PersistentVolumeClaimSpec{
				// ReadWriteOnce is what every storage class offers; the
				// scheduler keeps a run's Pods on the volume's node.
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: s.StorageClassName,
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: s.Size}},
			},
		})
	}
	typed = append(typed,
		&corev1.ServiceAccount{
			TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ServiceAccount"),
			ObjectMeta: meta(convention.WorkerServiceAccount),
		},
		workerNetworkPolicy(meta(convention.WorkerServiceAccount)),
	)
	if rules := workerRules(t); len(rules) > 0 {
		typed = append(typed,
			&rbacv1.Role{
				TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "Role"),
				ObjectMeta: meta(convention.WorkerServiceAccount),
				Rules:      rules,
			},
			&rbacv1.RoleBinding{
				TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "RoleBinding"),
				ObjectMeta: meta(convention.WorkerServiceAccount),
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: convention.WorkerServiceAccount},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: convention.WorkerServiceAccount, Namespace: ns}},
			},
		)
	}
	objs := []*unstructured.Unstructured{namespace(t, ns)}
	for _, o := range typed {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %T: %w", t.Name, o, err)
		}
		obj := &unstructured.Unstructured{Object: u}
		// The converter keeps empty creationTimestamps and statuses; an
		// apply must not claim fields it does not mean to set.
		unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(obj.Object, "status")
		objs = append(objs, obj)
	}
	return objs, nil
}

// namespace is a namespace of tenant t, labelled for Pod Security
// admission at the Tenant's level: the API server enforces the level on
// every Pod there, whoever creates it.
func namespace(t *gyrev1alpha1.Tenant, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	l := labels(t.Name)
	maps.Copy(l, podsecurity.NamespaceLabels(PodSecurity(t)))
	u.SetLabels(l)
	return u
}

func labels(tenant string) map[string]string {
	return map[string]string{convention.TenantLabel: tenant, convention.ManagedByLabel: convention.ManagedBy}
}

func typeMeta(gv schema.GroupVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
}
