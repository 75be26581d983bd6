package exec

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

func TestEngine_runTTL(t *testing.T) {
	requireCluster(t)
	ns := newTenant(t)
	cfg := testConfig()
	cfg.RunTTL = 2 * time.Second // the engine's default, for Workflows that set none
	startEngine(t, env.Config, cfg)
	ttl := func(seconds int32) func(*cyclonev1alpha1.Workflow) {
		return func(wf *cyclonev1alpha1.Workflow) { wf.Spec.TTLSecondsAfterFinished = ptr.To(seconds) }
	}
	createWorkflow(t, ns, "short", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"), ttl(1))
	createWorkflow(t, ns, "default", []*cyclonev1alpha1.Stage{stage(ns, "b", succeed("0s"))}, items("b"))
	createWorkflow(t, ns, "forever", []*cyclonev1alpha1.Stage{stage(ns, "c", succeed("0s"))}, items("c"), ttl(0))
	createWorkflow(t, ns, "running", []*cyclonev1alpha1.Stage{stage(ns, "d", forever())}, items("d"), ttl(1))

	gone := func(name string) func() bool {
		return func() bool {
			err := k8s.Get(bg, key(ns, name), &cyclonev1alpha1.WorkflowRun{})
			return apierrors.IsNotFound(err)
		}
	}
	for _, tc := range []struct {
		name, wf string
		deleted  bool
	}{
		{"A run is deleted once the Workflow's ttlSecondsAfterFinished has passed after its completion.", "short", true},
		{"A run of a Workflow without a TTL is deleted after the engine's RunTTL.", "default", true},
		{"A Workflow's ttlSecondsAfterFinished of 0 keeps its runs whatever the engine's RunTTL.", "forever", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			createRun(t, ns, "run-"+tc.wf, tc.wf)
			run := waitRun(t, ns, "run-"+tc.wf, cyclonev1alpha1.StatusSucceeded)
			g.Expect(run.Status.Overall.CompletionTime).NotTo(BeNil())
			if !tc.deleted {
				g.Consistently(gone("run-" + tc.wf)).WithTimeout(4 * time.Second).WithPolling(250 * time.Millisecond).Should(BeFalse())
				return
			}
			g.Eventually(gone("run-" + tc.wf)).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(BeTrue())
		})
	}

	t.Run("A run that is still running is never deleted by its TTL.", func(t *testing.T) {
		g := NewWithT(t)
		createRun(t, ns, "run-running", "running")
		g.Eventually(func(g Gomega) {
			g.Expect(getRun(g, ns, "run-running").Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusRunning))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		g.Consistently(gone("run-running")).WithTimeout(4 * time.Second).WithPolling(250 * time.Millisecond).Should(BeFalse())
	})
}
