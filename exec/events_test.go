package exec

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/runlogs"
	"github.com/gyreops/gyre/internal/testcluster"
)

// runEvents returns "Reason: note" of the Events on a run.
func runEvents(g Gomega, ns, run string) []string {
	list := &eventsv1.EventList{}
	g.Expect(k8s.List(bg, list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "WorkflowRun" && e.Regarding.Name == run {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out
}

func TestEngine_eventsOnRuns(t *testing.T) {
	requireCluster(t)
	startEngine(t, env.Config, testConfig())
	for _, tc := range []struct {
		name   string
		stages []*cyclonev1alpha1.Stage
		items  []cyclonev1alpha1.StageItem
		stop   bool
		want   []string
	}{
		{
			name: "A run whose second stage fails records its start, each stage's end, its failure and its clean-up.",
			stages: func() []*cyclonev1alpha1.Stage {
				return []*cyclonev1alpha1.Stage{
					stage("", "build", succeed("0s")),
					stage("", "test", map[string]string{testcluster.AnnotationResult: "fail", testcluster.AnnotationExitCode: "3"}),
				}
			}(),
			items: items("build", "test:build"),
			want: []string{
				"Started: Run started",
				"StageSucceeded: Stage build succeeded",
				"StageFailed: Stage test failed: Error: container main exited with code 3",
				"Failed: Run failed",
				"GCSucceeded: Pods and scratch data removed",
			},
		},
		{
			name:   "A stopped run records that it was cancelled.",
			stages: []*cyclonev1alpha1.Stage{stage("", "long", forever())},
			items:  items("long"),
			stop:   true,
			want:   []string{"Started: Run started", "Cancelled: Run cancelled", "GCSucceeded: Pods and scratch data removed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			for _, s := range tc.stages {
				s.Namespace = ns
			}
			createWorkflow(t, ns, "wf", tc.stages, tc.items)
			createRun(t, ns, "run1", "wf")
			if tc.stop {
				g.Eventually(func(g Gomega) {
					g.Expect(runEvents(g, ns, "run1")).To(ContainElement("Started: Run started"))
				}).WithTimeout(30 * time.Second).Should(Succeed())
				g.Eventually(func(g Gomega) {
					run := &cyclonev1alpha1.WorkflowRun{}
					g.Expect(k8s.Get(bg, key(ns, "run1"), run)).To(Succeed())
					run.Spec.Stop = true
					g.Expect(k8s.Update(bg, run)).To(Succeed())
				}).Should(Succeed())
			}
			g.Eventually(func(g Gomega) {
				got := runEvents(g, ns, "run1")
				for _, w := range tc.want {
					g.Expect(got).To(ContainElement(HavePrefix(w)), "events so far: %s", strings.Join(got, " | "))
				}
			}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		})
	}
}

// TestEngine_stagesEndingTogetherShareOneEvent: the stages one status
// write records as succeeded are named in one Event, not one Event each;
// and none when that write records the run's success, which says it.
func TestEngine_stagesEndingTogetherShareOneEvent(t *testing.T) {
	requireCluster(t)
	for _, tc := range []struct {
		name string
		last map[string]string
		want []string
	}{{
		name: "Stages that succeed before a failure written with them share one Event.",
		last: fail("0s"),
		want: []string{"Started: Run started", "StageSucceeded: Stages a, b, c succeeded", "StageFailed: Stage d failed", "Failed: Run failed"},
	}, {
		name: "Stages that succeed with the run are told by the run's Event alone.",
		last: succeed("0s"),
		want: []string{"Started: Run started", "Succeeded: Run succeeded"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			cfg := testConfig()
			cfg.RunningReportDelay = time.Minute // one write, at the end
			startEngine(t, env.Config, cfg)
			createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{
				stage(ns, "a", succeed("0s")), stage(ns, "b", succeed("0s")), stage(ns, "c", succeed("0s")), stage(ns, "d", tc.last),
			}, items("a", "b:a", "c:a", "d:b,c"))
			createRun(t, ns, "run1", "wf")
			// The run's and its stages' Events. Each Event is sent on its
			// own, so they arrive in any order: the GC's may come before
			// the run's end.
			stages := func(g Gomega) []string {
				var out []string
				for _, e := range runEvents(g, ns, "run1") {
					if strings.HasPrefix(e, "Stage") || strings.HasPrefix(e, "Started") || strings.HasPrefix(e, "Succeeded") || strings.HasPrefix(e, "Failed") {
						out = append(out, e)
					}
				}
				return out
			}
			g.Eventually(func(g Gomega) {
				got := stages(g)
				for _, w := range tc.want {
					g.Expect(got).To(ContainElement(HavePrefix(w)), "events so far: %s", strings.Join(got, " | "))
				}
			}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(runEvents(g, ns, "run1")).To(ContainElement(HavePrefix("GC")))
			}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
			// No further Event for a stage: one was written per write.
			g.Consistently(stages).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(HaveLen(len(tc.want)))
		})
	}
}

func TestEngine_logsGoWithTheRun(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	cfg := testConfig()
	store := &runlogs.Dir{Root: t.TempDir()}
	cfg.Logs = store
	startEngine(t, env.Config, cfg)
	ns := newTenant(t)
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"))
	run := createRun(t, ns, "run1", "wf")
	waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	// kwok's Pods have no logs to read: the test stores one as the
	// engine would have.
	k := runlogs.Key{Namespace: ns, Run: "run1", Stage: "a", Attempt: 1, Container: "main"}
	g.Expect(store.Write(bg, k, strings.NewReader("hello\n"))).To(Succeed())

	g.Expect(k8s.Delete(bg, run)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(bg, key(ns, "run1"), &cyclonev1alpha1.WorkflowRun{}))
	}).WithTimeout(30 * time.Second).Should(BeTrue())
	keys, err := store.List(bg, ns, "run1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys).To(BeEmpty(), "the run's finalizer deleted its logs")
}
