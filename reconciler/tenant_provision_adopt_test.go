package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

// createControlTenant creates a Tenant of tenants/alpha whose one target
// runs on the control cluster, checked only when asked or when something
// changes.
func (f *tenantFixture) createControlTenant(g *WithT, name string) {
	tn := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: f.repoObj.Name},
			Path:          "tenants/alpha",
			Interval:      &metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(testEnv.Client.Create(context.Background(), tn)).To(Succeed())
	deleteAtCleanup(f.t, tn)
}

// TestTenantReconciler_adoption: a Tenant whose worker namespace exists
// already, made by someone else, does not take it over, applies nothing,
// and says so on its status until the namespace is annotated for adoption.
func TestTenantReconciler_adoption(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	f := newTenantFixture(t, g)
	f.publish(g, "initial")
	worker := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: convention.WorkerNamespace("gamma"), Labels: map[string]string{"team": "db"}}}
	g.Expect(testEnv.Client.Create(ctx, worker)).To(Succeed())
	deleteAtCleanup(t, worker)
	f.start(g)
	f.createControlTenant(g, "gamma")

	t.Run("The Tenant is not Ready and names the namespace it may not take.", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func(g Gomega) {
			tn := getTenant(g, "gamma")
			ready := apimeta.FindStatusCondition(tn.Status.Conditions, meta.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(ReasonProvisionFailed))
			g.Expect(ready.Message).To(ContainSubstring("Namespace cyclone-gamma-worker exists and gyre did not create it for tenant gamma"))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		// Nothing of the tenant is applied while one of its namespaces
		// may be someone else's.
		g.Consistently(func(g Gomega) {
			g.Expect(getTenant(g, "gamma").Status.Objects).To(BeZero())
		}).WithTimeout(2 * time.Second).Should(Succeed())
		ns := &corev1.Namespace{}
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKeyFromObject(worker), ns)).To(Succeed())
		g.Expect(ns.Labels).NotTo(HaveKey(convention.TenantLabel))
	})

	t.Run("Annotated gyre.dev/adopt=true, the namespace is provisioned at the next reconcile.", func(t *testing.T) {
		g := NewWithT(t)
		ns := &corev1.Namespace{}
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKeyFromObject(worker), ns)).To(Succeed())
		ns.Annotations = map[string]string{gyrev1alpha1.AdoptAnnotation: "true"}
		g.Expect(testEnv.Client.Update(ctx, ns)).To(Succeed())
		// A spec change makes the next reconcile come now.
		g.Eventually(func(g Gomega) {
			tn := getTenant(g, "gamma")
			tn.Spec.Quota = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("5")}
			g.Expect(testEnv.Client.Update(ctx, tn)).To(Succeed())
		}).Should(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(testEnv.Client.Get(ctx, client.ObjectKeyFromObject(worker), ns)).To(Succeed())
			g.Expect(ns.Labels).To(HaveKeyWithValue(convention.TenantLabel, "gamma"))
			g.Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "baseline"))
			tn := getTenant(g, "gamma")
			g.Expect(apimeta.IsStatusConditionTrue(tn.Status.Conditions, meta.ReadyCondition)).To(BeTrue(), "%v", tn.Status.Conditions)
		}).WithTimeout(60 * time.Second).Should(Succeed())
	})
}
