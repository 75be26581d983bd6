package exec

import (
	"context"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// diamond is a 5-stage DAG: a; b and c after a; d after b and c; e after d.
func diamond(t testing.TB, ns string, fates map[string]map[string]string) *cyclonev1alpha1.Workflow {
	var stages []*cyclonev1alpha1.Stage
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		fate := succeed("200ms")
		if f, ok := fates[name]; ok {
			fate = f
		}
		stages = append(stages, stage(ns, name, fate))
	}
	return createWorkflow(t, ns, "diamond", stages, items("a", "b:a", "c:a", "d:b,c", "e:d"))
}

// phaseOf returns the phase of each stage.
func phaseOf(run *cyclonev1alpha1.WorkflowRun) map[string]cyclonev1alpha1.StatusPhase {
	out := map[string]cyclonev1alpha1.StatusPhase{}
	for name, s := range run.Status.Stages {
		out[name] = s.Status.Phase
	}
	return out
}

// checkDependencyOrder checks in the API server's event order that every
// stage Pod was created only after the Pods of its dependencies had
// succeeded, and that each stage had exactly one Pod.
func checkDependencyOrder(g Gomega, events []podEvent, depends map[string][]string) {
	succeeded := map[string]bool{}
	created := map[string]int{}
	for _, e := range events {
		if e.Stage == "" {
			continue
		}
		switch {
		case e.Type == watch.Added:
			created[e.Stage]++
			for _, d := range depends[e.Stage] {
				g.Expect(succeeded[d]).To(BeTrue(), "stage %s started before its dependency %s succeeded", e.Stage, d)
			}
		case e.Phase == corev1.PodSucceeded:
			succeeded[e.Stage] = true
		}
	}
	for stage := range depends {
		g.Expect(created[stage]).To(Equal(1), "pods of stage %s", stage)
	}
}

func TestEngine_diamondSucceedsInDependencyOrder(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
	startEngine(t, env.Config, testConfig())
	diamond(t, ns, nil)
	createRun(t, ns, "run1", "diamond")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusSucceeded))
	g.Expect(run.Status.Stages).To(HaveLen(5))
	g.Expect(run.Status.Cleaned).To(BeTrue())
	g.Expect(run.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded))
	g.Expect(run.Status.Overall.CompletionTime).NotTo(BeNil())
	g.Expect(run.Finalizers).To(ContainElement(convention.RunFinalizer))
	checkDependencyOrder(g, rec.all(), map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"d"}})

	// GC: the stage Pods went, then the GC Pod came and went.
	g.Eventually(func(g Gomega) {
		events := rec.all()
		gcAdded := slices.IndexFunc(events, func(e podEvent) bool { return e.Type == watch.Added && e.Name == "run1-gc" })
		g.Expect(gcAdded).To(BeNumerically(">=", 0))
		for _, e := range events[gcAdded:] {
			g.Expect(e.Type == watch.Added && e.Stage != "").To(BeFalse(), "stage pod %s created after GC", e.Name)
		}
		g.Expect(events).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", "run1-gc"))))
		pods := &corev1.PodList{}
		g.Expect(k8s.List(context.Background(), pods, client.InNamespace("cyclone-"+Tenant(ns)+"-worker"))).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

func TestEngine_failingStageStopsDependants(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	startEngine(t, env.Config, testConfig())
	wf := diamond(t, ns, map[string]map[string]string{"b": fail("0s"), "c": succeed("1s")})
	createRun(t, ns, "run1", wf.Name)

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	g.Expect(phaseOf(run)).To(Equal(map[string]cyclonev1alpha1.StatusPhase{
		"a": cyclonev1alpha1.StatusSucceeded,
		"b": cyclonev1alpha1.StatusFailed,
		"c": cyclonev1alpha1.StatusSucceeded, // already running: it finishes
		"d": cyclonev1alpha1.StatusCancelled,
		"e": cyclonev1alpha1.StatusCancelled,
	}))
	g.Expect(run.Status.Stages["b"].Status.Message).To(ContainSubstring("container main exited with code 1"))
	g.Expect(run.Status.Stages["d"].Status.Reason).To(Equal(ReasonUpstreamFailed))
	g.Expect(run.Status.Overall.Message).To(ContainSubstring("stage b failed"))
}

func TestEngine_trivialFailureDoesNotFailTheRun(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	startEngine(t, env.Config, testConfig())
	its := items("a", "b:a", "c:a", "d:b,c", "e:d")
	its[1].Trivial = true
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{
		stage(ns, "a", succeed("0s")), stage(ns, "b", fail("0s")), stage(ns, "c", succeed("0s")),
		stage(ns, "d", succeed("0s")), stage(ns, "e", succeed("0s")),
	}, its)
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(run.Status.Stages["b"].Status.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
	g.Expect(run.Status.Stages["d"].Status.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	g.Expect(run.Status.Stages["e"].Status.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
}

func TestEngine_stageTimeoutFailsTheAttemptAndDeletesItsPod(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	rec := recordPods(t, k8s, worker)
	startEngine(t, env.Config, testConfig())
	its := items("slow")
	its[0].Timeout = "2s"
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "slow", forever())}, its)
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	g.Expect(run.Status.Stages["slow"].Status.Reason).To(Equal(ReasonTimeout))
	g.Expect(run.Status.Stages["slow"].Status.Message).To(ContainSubstring("stage timeout of 2s"))
	g.Expect(rec.all()).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", convention.PodName("run1", "slow", 1)))))
}

// TestEngine_runTimeout: a run past its timeout fails; its stages show
// what their Pods did, the one still running Failed, the ones not started
// Cancelled. So too when it times out before any of its progress was
// written, its write held back for RunningReportDelay.
func TestEngine_runTimeout(t *testing.T) {
	requireCluster(t)
	for _, tt := range []struct {
		name string
		hold time.Duration
	}{
		{"Progress written as it goes.", 0},
		{"Nothing written before the end.", time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			cfg := testConfig()
			cfg.RunningReportDelay = tt.hold
			startEngine(t, env.Config, cfg)
			createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s")), stage(ns, "slow", forever()), stage(ns, "z", succeed("0s"))},
				items("a", "slow:a", "z:slow"))
			createRun(t, ns, "run1", "wf", func(r *cyclonev1alpha1.WorkflowRun) { r.Spec.Timeout = "3s" })

			run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
			g.Expect(run.Status.Overall.Reason).To(Equal(ReasonTimeout))
			g.Expect(phaseOf(run)).To(Equal(map[string]cyclonev1alpha1.StatusPhase{
				"a": cyclonev1alpha1.StatusSucceeded, "slow": cyclonev1alpha1.StatusFailed, "z": cyclonev1alpha1.StatusCancelled,
			}))
		})
	}
}

func TestEngine_stopCancelsTheRun(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	rec := recordPods(t, k8s, worker)
	startEngine(t, env.Config, testConfig())
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "slow", forever()), stage(ns, "next", succeed("0s"))}, items("slow", "next:slow"))
	createRun(t, ns, "run1", "wf")
	g.Eventually(func(g Gomega) {
		g.Expect(stagePhase(getRun(g, ns, "run1"), "slow")).To(Equal(cyclonev1alpha1.StatusRunning))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	run := getRun(g, ns, "run1")
	patch := client.MergeFrom(run.DeepCopy())
	run.Spec.Stop = true
	g.Expect(k8s.Patch(context.Background(), run, patch)).To(Succeed())

	run = waitRun(t, ns, "run1", cyclonev1alpha1.StatusCancelled)
	g.Expect(run.Status.Overall.Reason).To(Equal(cyclonev1alpha1.ReasonManuallyStop))
	g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusCancelled))
	g.Expect(rec.created()).NotTo(ContainElement(convention.PodName("run1", "next", 1)))
	g.Expect(rec.all()).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", convention.PodName("run1", "slow", 1)))))
}

func TestEngine_retryThenSuccess(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	rec := recordPods(t, k8s, worker)
	startEngine(t, env.Config, testConfig())
	its := items("flaky")
	its[0].Retries = 2
	// The first attempt fails after a while; meanwhile the Stage is
	// changed so that the next attempt succeeds, as a fixed flake would.
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "flaky", fail("1s"))}, its)
	createRun(t, ns, "run1", "wf")
	g.Eventually(rec.created).WithTimeout(30 * time.Second).Should(ContainElement(convention.PodName("run1", "flaky", 1)))
	st := &cyclonev1alpha1.Stage{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "flaky"}, st)).To(Succeed())
	st.Spec.Pod.Meta.Annotations = succeed("0s")
	g.Expect(k8s.Update(context.Background(), st)).To(Succeed())

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	s := run.Status.Stages["flaky"]
	g.Expect(s.Attempt).To(Equal(int32(2)))
	g.Expect(s.Pod.Name).To(Equal(convention.PodName("run1", "flaky", 2)))
	g.Expect(rec.created()).To(Equal([]string{convention.PodName("run1", "flaky", 1), convention.PodName("run1", "flaky", 2), "run1-gc"}))
}

func TestEngine_retriesExhausted(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	startEngine(t, env.Config, testConfig())
	its := items("bad")
	its[0].Retries = 1
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "bad", fail("0s"))}, its)
	createRun(t, ns, "run1", "wf")
	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	g.Expect(run.Status.Stages["bad"].Attempt).To(Equal(int32(2)))
	g.Expect(run.Status.Stages["bad"].Status.Reason).To(Equal(ReasonError))
}

func TestEngine_podDeletedMidRun(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	startEngine(t, env.Config, testConfig())
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "slow", forever())}, items("slow"))
	createRun(t, ns, "run1", "wf")
	g.Eventually(func(g Gomega) {
		g.Expect(stagePhase(getRun(g, ns, "run1"), "slow")).To(Equal(cyclonev1alpha1.StatusRunning))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name = worker, convention.PodName("run1", "slow", 1)
	g.Expect(k8s.Delete(context.Background(), pod)).To(Succeed())

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	g.Expect(run.Status.Stages["slow"].Status.Reason).To(Equal(ReasonPodDeleted))
	g.Expect(run.Status.Stages["slow"].Status.Message).To(ContainSubstring(convention.PodName("run1", "slow", 1)))
}

// stagePhase is the phase of a stage, empty before the run started.
func stagePhase(run *cyclonev1alpha1.WorkflowRun, stage string) cyclonev1alpha1.StatusPhase {
	if s := run.Status.Stages[stage]; s != nil {
		return s.Status.Phase
	}
	return ""
}

// TestEngine_runsWhoseNamesJoinAlikeKeepTheirOwnPods: run "deploy" with
// stage "prod-test" and run "deploy-prod" with stage "test" once both
// made Pod "deploy-prod-test-1", and the second run's stage failed with
// "was deleted before the stage finished" when the first cleaned up. Each
// now runs its own Pod to the end.
func TestEngine_runsWhoseNamesJoinAlikeKeepTheirOwnPods(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	rec := recordPods(t, k8s, worker)
	startEngine(t, env.Config, testConfig())
	createWorkflow(t, ns, "short", []*cyclonev1alpha1.Stage{stage(ns, "prod-test", succeed("1s"))}, items("prod-test"))
	createWorkflow(t, ns, "long", []*cyclonev1alpha1.Stage{stage(ns, "test", succeed("3s"))}, items("test"))
	createRun(t, ns, "deploy", "short")
	createRun(t, ns, "deploy-prod", "long")

	first := waitRun(t, ns, "deploy", cyclonev1alpha1.StatusSucceeded)
	second := waitRun(t, ns, "deploy-prod", cyclonev1alpha1.StatusSucceeded)
	g.Expect(first.Status.Stages["prod-test"].Pod.Name).NotTo(Equal(second.Status.Stages["test"].Pod.Name))
	g.Expect(rec.created()).To(ContainElements(convention.PodName("deploy", "prod-test", 1), convention.PodName("deploy-prod", "test", 1)))
}
