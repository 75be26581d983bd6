package exec

import (
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

	// The last state of every deleted run, from a watch: a run with a
	// short TTL may be gone before a poll sees it finished.
	w, err := k8s.Watch(bg, &cyclonev1alpha1.WorkflowRunList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	deleted := map[string]*cyclonev1alpha1.WorkflowRun{}
	go func() {
		for ev := range w.ResultChan() {
			if run, ok := ev.Object.(*cyclonev1alpha1.WorkflowRun); ok && ev.Type == watch.Deleted {
				mu.Lock()
				deleted[run.Name] = run
				mu.Unlock()
			}
		}
	}()
	lastState := func(name string) func() *cyclonev1alpha1.WorkflowRun {
		return func() *cyclonev1alpha1.WorkflowRun {
			mu.Lock()
			defer mu.Unlock()
			return deleted[name]
		}
	}
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
			name := "run-" + tc.wf
			createRun(t, ns, name, tc.wf)
			if !tc.deleted {
				waitRun(t, ns, name, cyclonev1alpha1.StatusSucceeded)
				g.Consistently(gone(name)).WithTimeout(4 * time.Second).WithPolling(250 * time.Millisecond).Should(BeFalse())
				return
			}
			g.Eventually(lastState(name)).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).ShouldNot(BeNil())
			last := lastState(name)()
			g.Expect(last.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "only a finished run is deleted")
			g.Expect(last.Status.Overall.CompletionTime).NotTo(BeNil())
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
