package tenants_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/tenants"
)

// controlTenant is a Tenant that runs on the control cluster only.
func controlTenant(name string) *gyrev1alpha1.Tenant {
	return &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       gyrev1alpha1.TenantSpec{RepositoryRef: gyrev1alpha1.ObjectReference{Name: "pipelines"}},
	}
}

// removeAfter deletes a tenant's namespaces when the test ends.
func removeAfter(t *testing.T, c client.Client, tenant string) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, ns := range []string{convention.Namespace(tenant), convention.WorkerNamespace(tenant)} {
			_ = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}
	})
}

// hostPod is a Pod beyond the baseline level: privileged, with the host's
// PID namespace and root directory.
func hostPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "root-", Namespace: ns},
		Spec: corev1.PodSpec{
			HostPID: true,
			Containers: []corev1.Container{{Name: "root", Image: "busybox",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
				VolumeMounts:    []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}}},
			Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		},
	}
}

// TestProvision_podSecurity: a tenant's namespaces carry the Pod Security
// admission labels of its level, so the API server refuses what the
// engine would, and they follow the level when it changes.
func TestProvision_podSecurity(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	cc := newClient(g, control)
	cs := &tenants.Clients{Control: cc, Reader: cc}
	tenant := controlTenant("psa")
	removeAfter(t, cc, tenant.Name)
	worker := convention.WorkerNamespace(tenant.Name)

	levelOf := func(g Gomega, ns string) map[string]string {
		n := &corev1.Namespace{}
		g.Expect(cc.Get(ctx, client.ObjectKey{Name: ns}, n)).To(Succeed())
		return n.Labels
	}

	t.Run("Both namespaces of a Tenant without a level are labelled baseline for enforce, warn and audit.", func(t *testing.T) {
		g := NewWithT(t)
		_, err := tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).NotTo(HaveOccurred())
		for _, ns := range []string{convention.Namespace(tenant.Name), worker} {
			for k, v := range podsecurity.NamespaceLabels(podsecurity.Baseline) {
				g.Expect(levelOf(g, ns)).To(HaveKeyWithValue(k, v), "namespace %s", ns)
			}
			g.Expect(levelOf(g, ns)).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "baseline"))
		}
	})

	t.Run("The API server refuses a privileged Pod created directly in the baseline worker namespace.", func(t *testing.T) {
		g := NewWithT(t)
		err := cc.Create(ctx, hostPod(worker))
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		g.Expect(err.Error()).To(ContainSubstring(`violates PodSecurity "baseline:latest"`))
	})

	t.Run("Raising the Tenant to privileged relabels its namespaces and the API server admits the Pod.", func(t *testing.T) {
		g := NewWithT(t)
		privileged := tenant.DeepCopy()
		privileged.Spec.PodSecurity = podsecurity.Privileged
		res, err := tenants.Provision(ctx, cs, nil, privileged)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Written).To(ConsistOf("control: Namespace/"+convention.Namespace(tenant.Name), "control: Namespace/"+worker))
		g.Expect(levelOf(g, worker)).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "privileged"))
		pod := hostPod(worker)
		g.Expect(cc.Create(ctx, pod)).To(Succeed())
		g.Expect(cc.Delete(ctx, pod)).To(Succeed())
	})

	t.Run("Lowering it to restricted labels the namespaces restricted.", func(t *testing.T) {
		g := NewWithT(t)
		restricted := tenant.DeepCopy()
		restricted.Spec.PodSecurity = podsecurity.Restricted
		_, err := tenants.Provision(ctx, cs, nil, restricted)
		g.Expect(err).NotTo(HaveOccurred())
		for _, ns := range []string{convention.Namespace(tenant.Name), worker} {
			g.Expect(levelOf(g, ns)).To(And(
				HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"),
				HaveKeyWithValue("pod-security.kubernetes.io/warn", "restricted"),
				HaveKeyWithValue("pod-security.kubernetes.io/audit", "restricted")))
		}
	})
}

// TestProvision_workerAccess: the worker ServiceAccount has no rights
// unless its Tenant grants them, and loses them when the grant goes.
func TestProvision_workerAccess(t *testing.T) {
	testcluster.Require(t)
	ctx := context.Background()
	g := NewWithT(t)
	cc := newClient(g, control)
	cs := &tenants.Clients{Control: cc, Reader: cc}
	tenant := controlTenant("access")
	removeAfter(t, cc, tenant.Name)
	worker := convention.WorkerNamespace(tenant.Name)

	allowed := func(g Gomega, verb, resource string) bool {
		review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + worker + ":" + convention.WorkerServiceAccount,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + worker, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: worker, Verb: verb, Resource: resource},
		}}
		g.Expect(cc.Create(ctx, review)).To(Succeed())
		return review.Status.Allowed
	}
	exists := func(g Gomega, o client.Object) bool {
		err := cc.Get(ctx, client.ObjectKey{Namespace: worker, Name: convention.WorkerServiceAccount}, o)
		g.Expect(client.IgnoreNotFound(err)).To(Succeed())
		return err == nil
	}

	for _, tc := range []struct {
		name                   string
		access                 []gyrev1alpha1.WorkerAccess
		patchPods, readSecrets bool
	}{
		{name: "A Tenant that grants nothing gets no Role and no RoleBinding: the worker may neither patch Pods nor read Secrets."},
		{name: "PatchPods lets the worker get, list, watch and patch Pods, and read no Secret.",
			access: []gyrev1alpha1.WorkerAccess{gyrev1alpha1.WorkerAccessPatchPods}, patchPods: true},
		{name: "ReadSecrets lets the worker read Secrets, and patch no Pod.",
			access: []gyrev1alpha1.WorkerAccess{gyrev1alpha1.WorkerAccessReadSecrets}, readSecrets: true},
		{name: "Both grants give both rights.",
			access:    []gyrev1alpha1.WorkerAccess{gyrev1alpha1.WorkerAccessPatchPods, gyrev1alpha1.WorkerAccessReadSecrets},
			patchPods: true, readSecrets: true},
		{name: "Withdrawing every grant deletes the Role and RoleBinding gyre made."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tn := tenant.DeepCopy()
			tn.Spec.WorkerAccess = tc.access
			_, err := tenants.Provision(ctx, cs, nil, tn)
			g.Expect(err).NotTo(HaveOccurred())
			granted := tc.patchPods || tc.readSecrets
			g.Expect(exists(g, &corev1.ServiceAccount{})).To(BeTrue())
			g.Expect(exists(g, &rbacv1.Role{})).To(Equal(granted))
			g.Expect(exists(g, &rbacv1.RoleBinding{})).To(Equal(granted))
			g.Eventually(func(g Gomega) {
				for _, verb := range []string{"get", "list", "watch", "patch"} {
					g.Expect(allowed(g, verb, "pods")).To(Equal(tc.patchPods), "%s pods", verb)
				}
				g.Expect(allowed(g, "get", "secrets")).To(Equal(tc.readSecrets), "get secrets")
				g.Expect(allowed(g, "list", "secrets")).To(BeFalse(), "list secrets")
				g.Expect(allowed(g, "create", "pods")).To(BeFalse(), "create pods")
			}).WithTimeout(10 * time.Second).Should(Succeed())
		})
	}
}

// TestProvision_adoption: gyre takes over no namespace or object it did
// not create for the tenant unless the object says it may.
func TestProvision_adoption(t *testing.T) {
	testcluster.Require(t)
	ctx := context.Background()
	g := NewWithT(t)
	cc := newClient(g, control)
	cs := &tenants.Clients{Control: cc, Reader: cc}

	t.Run("An existing worker namespace gyre did not create is refused by name, and left as it was.", func(t *testing.T) {
		g := NewWithT(t)
		tenant := controlTenant("squat")
		removeAfter(t, cc, tenant.Name)
		worker := convention.WorkerNamespace(tenant.Name)
		g.Expect(cc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: worker, Labels: map[string]string{"team": "db"}}})).To(Succeed())

		_, err := tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).To(MatchError(ContainSubstring("Namespace " + worker + " exists and gyre did not create it for tenant squat")))
		g.Expect(err).To(MatchError(ContainSubstring("annotate it gyre.dev/adopt=true")))
		ns := &corev1.Namespace{}
		g.Expect(cc.Get(ctx, client.ObjectKey{Name: worker}, ns)).To(Succeed())
		g.Expect(ns.Labels).NotTo(HaveKey(convention.TenantLabel))
		g.Expect(ns.Labels).NotTo(HaveKey("pod-security.kubernetes.io/enforce"))
		err = cc.Get(ctx, client.ObjectKey{Namespace: worker, Name: convention.WorkerServiceAccount}, &corev1.ServiceAccount{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "nothing was created in it")

		t.Run("Annotated gyre.dev/adopt=true, it is taken over.", func(t *testing.T) {
			g := NewWithT(t)
			ns.Annotations = map[string]string{gyrev1alpha1.AdoptAnnotation: "true"}
			g.Expect(cc.Update(ctx, ns)).To(Succeed())
			_, err := tenants.Provision(ctx, cs, nil, tenant)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cc.Get(ctx, client.ObjectKey{Name: worker}, ns)).To(Succeed())
			g.Expect(ns.Labels).To(HaveKeyWithValue(convention.TenantLabel, "squat"))
			g.Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "baseline"))
			g.Expect(cc.Get(ctx, client.ObjectKey{Namespace: worker, Name: convention.WorkerServiceAccount}, &corev1.ServiceAccount{})).To(Succeed())
		})
	})

	t.Run("A namespace another tenant owns is refused.", func(t *testing.T) {
		g := NewWithT(t)
		tenant := controlTenant("thief")
		removeAfter(t, cc, tenant.Name)
		g.Expect(cc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: convention.Namespace(tenant.Name),
			Labels: map[string]string{convention.TenantLabel: "victim", convention.ManagedByLabel: convention.ManagedBy}}})).To(Succeed())
		_, err := tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).To(MatchError(ContainSubstring("Namespace cyclone-thief exists and gyre did not create it for tenant thief")))
		ns := &corev1.Namespace{}
		g.Expect(cc.Get(ctx, client.ObjectKey{Name: convention.Namespace(tenant.Name)}, ns)).To(Succeed())
		g.Expect(ns.Labels).To(HaveKeyWithValue(convention.TenantLabel, "victim"))
	})

	t.Run("An object in gyre's worker namespace that gyre did not create is refused by kind and name, and adopted once annotated.", func(t *testing.T) {
		g := NewWithT(t)
		tenant := controlTenant("planted")
		removeAfter(t, cc, tenant.Name)
		_, err := tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).NotTo(HaveOccurred())
		worker := convention.WorkerNamespace(tenant.Name)
		sa := &corev1.ServiceAccount{}
		key := client.ObjectKey{Namespace: worker, Name: convention.WorkerServiceAccount}
		g.Expect(cc.Get(ctx, key, sa)).To(Succeed())
		g.Expect(cc.Delete(ctx, sa)).To(Succeed())
		planted := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: worker, Name: convention.WorkerServiceAccount}}
		g.Expect(cc.Create(ctx, planted)).To(Succeed())

		_, err = tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).To(MatchError(ContainSubstring("ServiceAccount " + worker + "/cyclone-worker exists and gyre did not create it")))

		planted.Annotations = map[string]string{gyrev1alpha1.AdoptAnnotation: "true"}
		g.Expect(cc.Update(ctx, planted)).To(Succeed())
		_, err = tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cc.Get(ctx, key, sa)).To(Succeed())
		g.Expect(sa.Labels).To(HaveKeyWithValue(convention.TenantLabel, "planted"))
	})
}
