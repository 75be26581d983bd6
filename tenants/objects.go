package tenants

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
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
}

// ControlObjects returns what a tenant needs on the control cluster: the
// namespace of its Cyclone objects.
func ControlObjects(t *gyrev1alpha1.Tenant) []*unstructured.Unstructured {
	return []*unstructured.Unstructured{namespace(t.Name, Namespace(t.Name))}
}

// WorkerObjects returns what a tenant needs on each execution cluster, in
// apply order: the worker namespace, then its ResourceQuota (when the
// Tenant sets a quota), PVC (when it sets storage), ServiceAccount, Role
// and RoleBinding.
func WorkerObjects(t *gyrev1alpha1.Tenant) ([]*unstructured.Unstructured, error) {
	ns := WorkerNamespace(t.Name)
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
	if s := t.Spec.Storage; s != nil {
		typed = append(typed, &corev1.PersistentVolumeClaim{
			TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "PersistentVolumeClaim"),
			ObjectMeta: meta(PVCName(t.Name)),
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
			ObjectMeta: meta(WorkerName),
		},
		&rbacv1.Role{
			TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "Role"),
			ObjectMeta: meta(WorkerName),
			// The coordinator sidecar follows the stage's containers,
			// collects their logs and leaves the stage's outputs on its
			// own Pod for the engine; resolvers read the Secrets and
			// ConfigMaps their Resources name. Nothing else.
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"patch"}},
				{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}, Verbs: []string{"get"}},
			},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "RoleBinding"),
			ObjectMeta: meta(WorkerName),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: WorkerName},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: WorkerName, Namespace: ns}},
		},
	)
	objs := []*unstructured.Unstructured{namespace(t.Name, ns)}
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

func namespace(tenant, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	u.SetLabels(labels(tenant))
	return u
}

func labels(tenant string) map[string]string {
	return map[string]string{TenantLabel: tenant, ManagedByLabel: ManagedBy}
}

func typeMeta(gv schema.GroupVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
}
