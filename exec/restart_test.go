package exec

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

var errKilled = errors.New("engine killed by the test")

// faultPoints are the steps at which the restart tests kill the engine.
var faultPoints = []string{"before-status-write", "after-status-write", "before-pod-create", "after-pod-create"}

// TestEngine_crashAtEveryStep aborts every other reconcile at one step of
// the run, for each step in turn: the run must still finish with one Pod
// per stage and no stage lost.
func TestEngine_crashAtEveryStep(t *testing.T) {
	requireCluster(t)
	for _, point := range faultPoints {
		t.Run("Aborting "+point+" loses nothing and duplicates nothing.", func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
			var calls atomic.Int64
			e, _ := startEngineWith(t, testConfig(), func(p string) error {
				if p == point && calls.Add(1)%2 == 1 {
					return errKilled
				}
				return nil
			})
			diamond(t, ns, nil)
			createRun(t, ns, "run1", "diamond")
			run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
			g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusSucceeded))
			g.Expect(run.Status.Cleaned).To(BeTrue())
			g.Expect(calls.Load()).To(BeNumerically(">", 1), "the fault point was reached")
			g.Expect(e.reconciles.Load()).To(BeNumerically(">", 0))
			checkDependencyOrder(g, rec.all(), map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"d"}})
		})
	}
}

// TestEngine_restartAtEveryStep kills the engine's whole manager at a step
// and starts a new one with empty caches, as a controller restart does.
// The n-th engine dies at its n-th arrival at the step, so each lives a
// little longer and the run is killed at each of its occurrences of the
// step in turn.
func TestEngine_restartAtEveryStep(t *testing.T) {
	requireCluster(t)
	for _, point := range faultPoints {
		t.Run("Restarting "+point+" loses nothing and duplicates nothing.", func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
			// Stages a and d take longer than RunningReportDelay, so that
			// the run writes its status more than once, and each engine
			// can die at its status write: a quick run writes it once,
			// at its end, with its clean-up.
			diamond(t, ns, map[string]map[string]string{"a": succeed("2500ms"), "d": succeed("2500ms")})
			createRun(t, ns, "run1", "diamond")

			restarts := 0
			deadline := time.Now().Add(90 * time.Second)
			for time.Now().Before(deadline) {
				killed := make(chan struct{})
				var once sync.Once
				var dead atomic.Bool
				var arrivals atomic.Int64
				life := int64(restarts + 1)
				_, stop := startEngineWith(t, testConfig(), func(p string) error {
					if dead.Load() {
						return errKilled
					}
					if p == point && arrivals.Add(1) == life {
						dead.Store(true)
						once.Do(func() { close(killed) })
						return errKilled
					}
					return nil
				})
				g.Eventually(func() bool { return killedOrDone(killed, ns) }).
					WithTimeout(2*time.Minute).WithPolling(50*time.Millisecond).Should(BeTrue(), "engine %d neither died at %s nor finished the run", restarts+1, point)
				stop()
				select {
				case <-killed:
					restarts++
					continue
				default:
				}
				break
			}
			run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
			g.Expect(restarts).To(BeNumerically(">=", 2), "restarts at %s", point)
			g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusSucceeded))
			checkDependencyOrder(g, rec.all(), map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"d"}})
			t.Logf("%d restarts at %s", restarts, point)
		})
	}
}

// killedOrDone reports whether the engine was killed or the run is over
// and cleaned.
func killedOrDone(killed chan struct{}, ns string) bool {
	select {
	case <-killed:
		return true
	default:
	}
	run := &cyclonev1alpha1.WorkflowRun{}
	if err := k8s.Get(bg, key(ns, "run1"), run); err != nil {
		return false
	}
	return run.Status.GC != nil && run.Status.GC.Phase != cyclonev1alpha1.GCRunning
}
