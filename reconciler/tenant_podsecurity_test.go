package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
)

// imageBuild is a stage that pushes an image, which needs the privileged
// Docker daemon at run time.
const imageBuild = `apiVersion: cyclone.dev/v1alpha1
kind: Resource
metadata:
  name: image
spec:
  type: Image
  parameters:
  - name: IMAGE
    value: registry.example.com/app:latest
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: image-build
spec:
  pod:
    outputs:
      resources:
      - name: image
    spec:
      containers:
      - name: main
        image: docker:28
        command: [docker, build, .]
`

// TestTenantReconciler_podSecurity: the Tenant's podSecurity level is
// what its stages are checked at, whatever the repository says.
func TestTenantReconciler_podSecurity(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newTenantFixture(t, g)
	f.repo.WriteFile("tenants/images/pipeline.yaml", imageBuild)
	rev := f.publish(g, "alpha's plain stages and an image build")
	f.start(g)

	newTenant := func(name, path, level string) {
		tn := &gyrev1alpha1.Tenant{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: gyrev1alpha1.TenantSpec{
				RepositoryRef: gyrev1alpha1.ObjectReference{Name: f.repoObj.Name},
				Path:          path,
				PodSecurity:   level,
				Clusters:      []gyrev1alpha1.TenantCluster{{Name: "one"}},
				Interval:      &metav1.Duration{Duration: time.Hour},
			},
		}
		g.Expect(testEnv.Client.Create(context.Background(), tn)).To(Succeed())
		t.Cleanup(func() { _ = client.IgnoreNotFound(testEnv.Client.Delete(context.Background(), tn)) })
	}

	t.Run("A restricted tenant whose stages ask for nothing stalls, naming the stage and the rule.", func(t *testing.T) {
		g := NewWithT(t)
		newTenant("strict", "tenants/alpha", "restricted")
		g.Eventually(func(g Gomega) {
			one := targetStatus(getTenant(g, "strict"), "one")
			g.Expect(one).NotTo(BeNil())
			stalled := apimeta.FindStatusCondition(one.Conditions, meta.StalledCondition)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Reason).To(Equal(ReasonRenderFailed))
			g.Expect(stalled.Message).To(ContainSubstring(`tenants/alpha/base/stages.yaml: Stage/build-one: spec.pod.spec: violates PodSecurity "restricted": allowPrivilegeEscalation != false`))
			g.Expect(stalled.Message).To(ContainSubstring("runAsNonRoot != true"))
			g.Expect(one.LastAttemptedRevision).To(Equal(rev))
			g.Expect(one.LastAppliedRevision).To(BeEmpty())
		}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		_, err := getStage(g, "strict", "build-one")
		g.Expect(err).To(MatchError(ContainSubstring("not found")), "nothing of the target is applied")
	})

	t.Run("The same stages at baseline, the default, are applied.", func(t *testing.T) {
		g := NewWithT(t)
		newTenant("lenient", "tenants/alpha", "")
		expectApplied(g, "lenient", rev)
	})

	t.Run("An image build below privileged is applied, with a warning event saying the run will fail.", func(t *testing.T) {
		g := NewWithT(t)
		newTenant("images", "tenants/images", "baseline")
		expectApplied(g, "images", rev)
		g.Eventually(func(g Gomega) {
			list := &eventsv1.EventList{}
			g.Expect(testEnv.Client.List(context.Background(), list)).To(Succeed())
			var notes []string
			for _, e := range list.Items {
				if e.Regarding.Kind == "Tenant" && e.Regarding.Name == "images" && e.Reason == ReasonRenderWarning {
					notes = append(notes, e.Note)
				}
			}
			g.Expect(notes).To(ConsistOf(ContainSubstring("Target one: tenants/images/pipeline.yaml: Stage/image-build: spec.pod.outputs.resources[0]: stage image-build outputs image resource image: it needs a privileged Docker daemon")))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})
}
