package exec

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/internal/testcluster"
)

func TestEngine_podFailuresSayWhy(t *testing.T) {
	requireCluster(t)
	withInit := func(s *cyclonev1alpha1.Stage) *cyclonev1alpha1.Stage {
		s.Spec.Pod.Spec.InitContainers = []corev1.Container{{Name: "prepare", Image: "busybox"}}
		return s
	}
	tests := []struct {
		name        string
		stage       func(ns string) *cyclonev1alpha1.Stage
		evict       bool
		wantReason  string
		wantMessage string
	}{
		{name: "A non-zero exit code names the container and the code.",
			stage: func(ns string) *cyclonev1alpha1.Stage {
				return stage(ns, "s", map[string]string{testcluster.AnnotationResult: "fail", testcluster.AnnotationExitCode: "3"})
			},
			wantReason: ReasonError, wantMessage: "container main exited with code 3"},
		{name: "An OOM kill says the container ran out of memory.",
			stage: func(ns string) *cyclonev1alpha1.Stage {
				return stage(ns, "s", map[string]string{testcluster.AnnotationResult: "oom"})
			},
			wantReason: ReasonOOMKilled, wantMessage: "container main ran out of memory"},
		{name: "A failed init container is named.",
			stage: func(ns string) *cyclonev1alpha1.Stage {
				return withInit(stage(ns, "s", map[string]string{testcluster.AnnotationResult: "init-fail"}))
			},
			wantReason: ReasonInitFailed, wantMessage: "init container prepare exited with code 1"},
		{name: "An image that cannot be pulled fails after the grace period.",
			stage: func(ns string) *cyclonev1alpha1.Stage {
				return stage(ns, "s", map[string]string{testcluster.AnnotationResult: "image-pull-backoff"})
			},
			wantReason: ReasonImagePull, wantMessage: "ImagePullBackOff"},
		// kwok cannot evict: the test writes the Pod status a kubelet
		// would write when it evicts a Pod.
		{name: "An evicted Pod says it was evicted.", evict: true,
			stage:      func(ns string) *cyclonev1alpha1.Stage { return stage(ns, "s", forever()) },
			wantReason: ReasonEvicted, wantMessage: "The node was low on resource: memory."},
	}
	cfg := testConfig()
	cfg.ImagePullGracePeriod = time.Second
	startEngine(t, env.Config, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{tt.stage(ns)}, items("s"))
			createRun(t, ns, "run1", "wf")
			if tt.evict {
				pod := &corev1.Pod{}
				g.Eventually(func(g Gomega) {
					g.Expect(k8s.Get(bg, key("cyclone-"+Tenant(ns)+"-worker", convention.PodName("run1", "s", 1)), pod)).To(Succeed())
					g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
				}).WithTimeout(30 * time.Second).Should(Succeed())
				pod.Status.Phase = corev1.PodFailed
				pod.Status.Reason = "Evicted"
				pod.Status.Message = "The node was low on resource: memory."
				g.Expect(k8s.Status().Update(bg, pod)).To(Succeed())
			}
			run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
			g.Expect(run.Status.Stages["s"].Status.Reason).To(Equal(tt.wantReason))
			g.Expect(run.Status.Stages["s"].Status.Message).To(ContainSubstring(tt.wantMessage))
		})
	}
}

func maxLive(events []podEvent) int {
	live := map[string]bool{}
	most := 0
	for _, e := range events {
		if e.Stage == "" {
			continue
		}
		switch {
		case e.Type == watch.Deleted, e.Phase == corev1.PodSucceeded, e.Phase == corev1.PodFailed:
			delete(live, e.Name)
		default:
			live[e.Name] = true
		}
		most = max(most, len(live))
	}
	return most
}

func TestEngine_parallelismCaps(t *testing.T) {
	requireCluster(t)
	wide := func(ns string) {
		createWorkflow(t, ns, "wide", []*cyclonev1alpha1.Stage{
			stage(ns, "a", succeed("300ms")), stage(ns, "b", succeed("300ms")), stage(ns, "c", succeed("300ms")), stage(ns, "d", succeed("300ms")),
		}, items("a", "b", "c", "d"))
	}
	t.Run("A run with parallelism 1 runs one stage at a time.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
		_, stop := startEngine(t, env.Config, testConfig())
		defer stop()
		wide(ns)
		createRun(t, ns, "run1", "wide", func(r *cyclonev1alpha1.WorkflowRun) { r.Spec.Parallelism = ptr.To[int32](1) })
		waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
		g.Expect(maxLive(rec.all())).To(Equal(1))
	})
	for _, tc := range []struct {
		name     string
		cap      int
		wait     time.Duration // how long a run held back waits for its next look; 0 keeps the default
		workflow func(ns string) string
	}{{
		name:     "A tenant with parallelism 2 runs two stages at a time across its runs, however many are reconciled at once.",
		cap:      2,
		workflow: func(ns string) string { wide(ns); return "wide" },
	}, {
		name: "A run the tenant's cap holds back starts when another run's stage ends, not at its next look.",
		cap:  1,
		wait: time.Hour,
		workflow: func(ns string) string {
			createWorkflow(t, ns, "one", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("300ms"))}, items("a"))
			return "one"
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
			cfg := testConfig()
			cfg.TenantParallelism = tc.cap
			if tc.wait > 0 {
				cfg.WaitInterval = tc.wait
			}
			_, stop := startEngine(t, env.Config, cfg)
			defer stop()
			wf := tc.workflow(ns)
			// Three runs reconciled at once, each seeing the others' newest
			// attempts before the cache does.
			runs := []string{"run1", "run2", "run3"}
			for _, run := range runs {
				createRun(t, ns, run, wf)
			}
			for _, run := range runs {
				waitRun(t, ns, run, cyclonev1alpha1.StatusSucceeded)
			}
			g.Expect(maxLive(rec.all())).To(Equal(tc.cap))
		})
	}
}

// TestEngine_reconcilesPerRun guards against excessive reconciles, as
// Tekton's tests do: a run of five stages in a chain, with its GC, takes
// fewer than maxReconciles reconciles. Only the run's own count: the
// engine also reconciles what earlier tests left.
func TestEngine_reconcilesPerRun(t *testing.T) {
	requireCluster(t)
	const maxReconciles = 30
	g := NewWithT(t)
	ns := newTenant(t)
	var reconciles atomic.Int64
	startEngineOn(t, env.Config, testConfig(), func(e *Engine) {
		e.reconciled = func(run types.NamespacedName) {
			if run == (types.NamespacedName{Namespace: ns, Name: "run1"}) {
				reconciles.Add(1)
			}
		}
	})
	createWorkflow(t, ns, "chain", []*cyclonev1alpha1.Stage{
		stage(ns, "a", succeed("0s")), stage(ns, "b", succeed("0s")), stage(ns, "c", succeed("0s")), stage(ns, "d", succeed("0s")), stage(ns, "e", succeed("0s")),
	}, items("a", "b:a", "c:b", "d:c", "e:d"))
	createRun(t, ns, "run1", "chain")
	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	// The run's last events are its GC Pod's end and deletion: count once
	// they have arrived, and keep counting while late ones might.
	g.Eventually(func(g Gomega) {
		g.Expect(getRun(g, ns, "run1").Status.Cleaned).To(BeTrue())
		pods := &corev1.PodList{}
		g.Expect(k8s.List(bg, pods, client.InNamespace("cyclone-"+Tenant(ns)+"-worker"), client.MatchingLabels{convention.LabelRunUID: string(run.UID)})).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Consistently(reconciles.Load).WithTimeout(time.Second).Should(BeNumerically("<", maxReconciles))
	t.Logf("%d reconciles for a run of 5 stages", reconciles.Load())
}

// TestEngine_writesPerRun: a run whose stages follow one another within
// RunningReportDelay, and whose start draws no variable values, writes
// its status once: its end, with its clean-up, since its GC Pod succeeds
// within RunningReportDelay of the end; not at its start nor once per
// stage. Its Pods, all ended by the GC, go with one request. A run
// created with the engine's finalizer, as triggers create theirs, costs
// no write of its metadata.
func TestEngine_writesPerRun(t *testing.T) {
	requireCluster(t)
	ns := newTenant(t)
	var writes writeCounter
	// Requests are told apart by path: the engine also looks at what
	// earlier tests left in other namespaces.
	writes.tracing.Store(true)
	cfg := testConfig()
	// Long enough that a loaded machine cannot spread the chain wider.
	cfg.RunningReportDelay = time.Minute
	startEngine(t, countingConfig(&writes), cfg)
	createWorkflow(t, ns, "chain", []*cyclonev1alpha1.Stage{
		stage(ns, "a", succeed("0s")), stage(ns, "b", succeed("0s")), stage(ns, "c", succeed("0s")), stage(ns, "d", succeed("0s")), stage(ns, "e", succeed("0s")),
	}, items("a", "b:a", "c:b", "d:c", "e:d"))
	createRun(t, ns, "byhand", "chain")
	createRun(t, ns, "triggered", "chain", func(run *cyclonev1alpha1.WorkflowRun) {
		run.Finalizers = []string{convention.RunFinalizer}
	})
	worker := "/namespaces/cyclone-" + Tenant(ns) + "-worker/"
	for _, name := range []string{"byhand", "triggered"} {
		run := waitRun(t, ns, name, cyclonev1alpha1.StatusSucceeded)
		t.Run("Run "+name+" ends cleaned, its GC succeeded, every stage dated.", func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(run.Status.Cleaned).To(BeTrue())
			g.Expect(run.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded))
			g.Expect(run.Status.GC.StartTime).NotTo(BeNil())
			g.Expect(run.Status.Overall.CompletionTime).NotTo(BeNil())
			g.Expect(run.Status.GC.StartTime.Before(run.Status.Overall.CompletionTime)).To(BeFalse(), "the GC starts at the run's end")
			g.Expect(run.Finalizers).To(ContainElement(convention.RunFinalizer))
			for _, stage := range []string{"a", "b", "c", "d", "e"} {
				ss := run.Status.Stages[stage]
				g.Expect(ss.Status.StartTime).NotTo(BeNil(), "stage %s shows when it started", stage)
				g.Expect(ss.Status.CompletionTime).NotTo(BeNil(), "stage %s shows when it ended", stage)
			}
		})
	}
	NewWithT(t).Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8s.List(bg, pods, client.InNamespace("cyclone-"+Tenant(ns)+"-worker"))).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(time.Minute).Should(Succeed())
	writes.mu.Lock()
	defer writes.mu.Unlock()
	runs := "/apis/cyclone.dev/v1alpha1/namespaces/" + ns + "/workflowruns/"
	// metadata counts the writes of a run itself, not of its status.
	metadata := func(name string) int {
		return writes.sentLocked("PATCH "+runs+name) - writes.sentLocked("PATCH "+runs+name+"/status")
	}
	for _, tc := range []struct {
		name string
		got  int
		want int
	}{
		{name: "The status of a run is written once, at its end, with its clean-up.", got: writes.sentLocked("PATCH " + runs + "byhand/status"), want: 1},
		{name: "The status of a run created with the finalizer is written once too.", got: writes.sentLocked("PATCH " + runs + "triggered/status"), want: 1},
		{name: "A run created without the finalizer gets it with one write.", got: metadata("byhand"), want: 1},
		{name: "A run created with the finalizer, as triggers create runs, costs no write of its metadata.", got: metadata("triggered"), want: 0},
		{name: "The stage Pods and the GC Pod of each run are deleted with one request.", got: writes.sentLocked("DELETE /api/v1" + worker + "pods"), want: 2},
		{name: "Every stage Pod and the GC Pod is created once.", got: writes.sentLocked("POST /api/v1" + worker + "pods"), want: 12},
		{name: "No run Secret is looked for, as no stage Pod has one.", got: writes.sentLocked("GET /api/v1" + worker + "secrets/"), want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(tc.got).To(Equal(tc.want), "requests:\n%s", writes.reportLocked(1))
		})
	}
}

// runVersion is what one version of a run's status says of its end.
type runVersion struct {
	Phase   cyclonev1alpha1.StatusPhase
	GC      cyclonev1alpha1.GCPhase
	Cleaned bool
}

// recordRun records every version of run name's status in namespace ns,
// in the API server's order.
func recordRun(t testing.TB, ns, name string) func() []runVersion {
	t.Helper()
	w, err := k8s.Watch(bg, &cyclonev1alpha1.WorkflowRunList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	var versions []runVersion
	go func() {
		for ev := range w.ResultChan() {
			run, ok := ev.Object.(*cyclonev1alpha1.WorkflowRun)
			if !ok || run.Name != name {
				continue
			}
			v := runVersion{Phase: run.Status.Overall.Phase, Cleaned: run.Status.Cleaned}
			if run.Status.GC != nil {
				v.GC = run.Status.GC.Phase
			}
			mu.Lock()
			if len(versions) == 0 || versions[len(versions)-1] != v {
				versions = append(versions, v)
			}
			mu.Unlock()
		}
	}()
	return func() []runVersion {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(versions)
	}
}

// TestEngine_slowGCDoesNotHoldTheEndBack: a run's end waits for its GC
// Pod for RunningReportDelay at most. A GC Pod that takes longer, or
// fails, gets the end written while the GC is still running, as a user
// watching the run sees it.
func TestEngine_slowGCDoesNotHoldTheEndBack(t *testing.T) {
	requireCluster(t)
	for _, tc := range []struct {
		name   string
		gc     map[string]string
		wantGC cyclonev1alpha1.GCPhase
	}{
		{name: "A GC Pod slower than RunningReportDelay gets the end written first.", gc: succeed("4s"), wantGC: cyclonev1alpha1.GCSucceeded},
		{name: "A failing GC Pod gets the end written first.", gc: fail("0s"), wantGC: cyclonev1alpha1.GCFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			versions := recordRun(t, ns, "run1")
			cfg := testConfig()
			cfg.GCPodAnnotations = tc.gc
			cfg.GCAttempts = 2
			_, stop := startEngine(t, env.Config, cfg)
			defer stop()
			createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"))
			createRun(t, ns, "run1", "wf")
			run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
			g.Expect(run.Status.GC.Phase).To(Equal(tc.wantGC))
			g.Expect(versions()).To(ContainElement(runVersion{Phase: cyclonev1alpha1.StatusSucceeded, GC: cyclonev1alpha1.GCRunning}),
				"the run was seen ended while its GC ran")
		})
	}
}

// TestEngine_restartWhileTheEndIsHeldBack: an engine that stops after
// creating a run's GC Pod, with the run's end not written yet, leaves a
// new engine to find the end again and adopt the GC Pod: one GC Pod, and
// one status write with the end and the clean-up.
func TestEngine_restartWhileTheEndIsHeldBack(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	rec := recordPods(t, k8s, worker)
	var writes writeCounter
	writes.tracing.Store(true)
	cfg := testConfig()
	cfg.RunningReportDelay = time.Minute // nothing is written before the end
	killed := make(chan struct{})
	var dead atomic.Bool
	_, stop := startEngineOn(t, countingConfig(&writes), cfg, func(e *Engine) {
		e.fault = func(p string) error {
			if p == "after-gc-pod-create" && !dead.Swap(true) {
				close(killed)
			}
			if dead.Load() {
				return errKilled
			}
			return nil
		}
	})
	createWorkflow(t, ns, "chain", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s")), stage(ns, "b", succeed("0s"))}, items("a", "b:a"))
	createRun(t, ns, "run1", "chain")
	g.Eventually(killed).WithTimeout(time.Minute).Should(BeClosed())
	stop()
	g.Expect(getRun(g, ns, "run1").Status.Overall.Phase).NotTo(Equal(cyclonev1alpha1.StatusSucceeded), "the first engine died before writing the end")

	startEngineOn(t, countingConfig(&writes), cfg, nil)
	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusSucceeded))
	g.Expect(run.Status.Cleaned).To(BeTrue())
	g.Expect(run.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded))
	g.Expect(run.Status.GC.Attempt).To(Equal(int32(1)))
	g.Expect(run.Status.GC.StartTime.Before(run.Status.Overall.CompletionTime)).To(BeFalse(), "the GC starts at the run's end")
	g.Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8s.List(bg, pods, client.InNamespace(worker))).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Expect(rec.created()).To(HaveExactElements(convention.PodName("run1", "a", 1), convention.PodName("run1", "b", 1), "run1-gc"))
	writes.mu.Lock()
	defer writes.mu.Unlock()
	g.Expect(writes.sentLocked("PATCH /apis/cyclone.dev/v1alpha1/namespaces/"+ns+"/workflowruns/run1/status")).To(Equal(1),
		"one status write, by the second engine; requests:\n%s", writes.reportLocked(1))
}

// TestEngine_stageTimesComeFromTheirPods: a run's status may be written
// long after its stages ran (held back, or queued behind other runs), and
// still says when each stage started and ended: as its Pod's containers
// did, not when the engine wrote it. Stage a ends seconds before the only
// status write, at the run's end.
func TestEngine_stageTimesComeFromTheirPods(t *testing.T) {
	requireCluster(t)
	ns := newTenant(t)
	cfg := testConfig()
	cfg.RunningReportDelay = time.Minute // one write, at the end
	cfg.GCDelay = time.Minute            // the Pods stay to be compared
	startEngine(t, env.Config, cfg)
	createWorkflow(t, ns, "chain", []*cyclonev1alpha1.Stage{
		stage(ns, "a", succeed("0s")), stage(ns, "b", succeed("3s")),
	}, items("a", "b:a"))
	createRun(t, ns, "run1", "chain")
	var run *cyclonev1alpha1.WorkflowRun
	NewWithT(t).Eventually(func(g Gomega) {
		run = getRun(g, ns, "run1")
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	}).WithTimeout(time.Minute).Should(Succeed())
	worker := "cyclone-" + Tenant(ns) + "-worker"
	for _, stage := range []string{"a", "b"} {
		pod := &corev1.Pod{}
		NewWithT(t).Expect(k8s.Get(bg, key(worker, convention.PodName("run1", stage, 1)), pod)).To(Succeed())
		started, ended := containerTimes(pod)
		ss := run.Status.Stages[stage].Status
		t.Run("Stage "+stage+" ended when its Pod's last container finished.", func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(ended.IsZero()).To(BeFalse(), "kwok reports finishedAt")
			g.Expect(ss.CompletionTime).NotTo(BeNil())
			g.Expect(ss.CompletionTime.Time).To(BeTemporally("==", ended), "stage %s: written %s, pod ended %s", stage, ss.CompletionTime, ended)
			g.Expect(ss.LastTransitionTime.Time).To(BeTemporally("==", ended))
		})
		t.Run("Stage "+stage+" started when its Pod's first container started.", func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(ss.StartTime).NotTo(BeNil())
			g.Expect(ss.StartTime.Time).To(BeTemporally("==", started), "stage %s: written %s, pod started %s", stage, ss.StartTime, started)
		})
	}
}

// TestEngine_drawnValuesAreTheSameInEveryPod: a run's start draws values
// for "$(random:N)" and "$(timenow:...)" global variables; every stage
// Pod must see the ones the status shows, even when the status of the
// stages is held back and every round derives the run's progress again.
func TestEngine_drawnValuesAreTheSameInEveryPod(t *testing.T) {
	requireCluster(t)
	ns := newTenant(t)
	cfg := testConfig()
	cfg.RunningReportDelay = time.Minute
	cfg.GCDelay = time.Minute // the Pods stay to be read
	startEngine(t, env.Config, cfg)
	var stages []*cyclonev1alpha1.Stage
	for _, name := range []string{"a", "b"} {
		st := stage(ns, name, succeed("0s"))
		st.Spec.Pod.Inputs.Arguments = []cyclonev1alpha1.ArgumentValue{
			{Name: "tag", Value: ptr.To("${variables.TAG}")}, {Name: "at", Value: ptr.To("${variables.AT}")}}
		st.Spec.Pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TAG", Value: "{{ tag }}"}, {Name: "AT", Value: "{{ at }}"}}
		stages = append(stages, st)
	}
	createWorkflow(t, ns, "chain", stages, items("a", "b:a"))
	createRun(t, ns, "run1", "chain", func(run *cyclonev1alpha1.WorkflowRun) {
		run.Spec.GlobalVariables = []cyclonev1alpha1.GlobalVariable{{Name: "TAG", Value: "$(random:8)"}, {Name: "AT", Value: "$(timenow:RFC3339Nano)"}}
	})
	var run *cyclonev1alpha1.WorkflowRun
	NewWithT(t).Eventually(func(g Gomega) {
		run = getRun(g, ns, "run1")
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	}).WithTimeout(time.Minute).Should(Succeed())
	want := map[string]string{}
	for _, v := range run.Status.GlobalVariables {
		want[v.Name] = v.Value
	}
	worker := "cyclone-" + Tenant(ns) + "-worker"
	for _, tc := range []struct{ name, stage, env string }{
		{name: "Stage a sees the random value the status shows.", stage: "a", env: "TAG"},
		{name: "Stage b sees the random value the status shows.", stage: "b", env: "TAG"},
		{name: "Stage a sees the time the status shows.", stage: "a", env: "AT"},
		{name: "Stage b sees the time the status shows.", stage: "b", env: "AT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := &corev1.Pod{}
			g.Expect(k8s.Get(bg, key(worker, convention.PodName("run1", tc.stage, 1)), pod)).To(Succeed())
			g.Expect(want[tc.env]).NotTo(BeEmpty())
			g.Expect(pod.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: tc.env, Value: want[tc.env]}))
		})
	}
}

// TestEngine_runsUnderATenantQuota: a worker namespace whose
// ResourceQuota counts CPU and memory admits only Pods whose every
// container says how much it needs. The Workflow sizes the stage's own
// containers; the engine's helpers and the GC Pod must say it too, or the
// API server refuses the Pods.
func TestEngine_runsUnderATenantQuota(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "cyclone-quota", Namespace: worker},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourceRequestsCPU: resource.MustParse("4"), corev1.ResourceLimitsCPU: resource.MustParse("8"),
			corev1.ResourceRequestsMemory: resource.MustParse("8Gi"), corev1.ResourceLimitsMemory: resource.MustParse("16Gi"),
		}},
	}
	g.Expect(k8s.Create(bg, quota)).To(Succeed())
	// The quota admits nothing until the quota controller has counted it.
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(bg, client.ObjectKeyFromObject(quota), quota)).To(Succeed())
		g.Expect(quota.Status.Hard).NotTo(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	startEngine(t, env.Config, testConfig())
	src := &cyclonev1alpha1.Resource{ObjectMeta: metav1.ObjectMeta{Name: "src", Namespace: ns}, Spec: cyclonev1alpha1.ResourceSpec{
		Type: cyclonev1alpha1.GitResourceType, Parameters: []cyclonev1alpha1.ParameterItem{
			{Name: "SCM_URL", Value: ptr.To("https://git.example/app")}, {Name: "SCM_REVISION", Value: ptr.To("main")}}}}
	g.Expect(k8s.Create(bg, src)).To(Succeed())
	build := stage(ns, "build", succeed("0s"))
	build.Spec.Pod.Inputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "src", Path: "/src"}}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{build}, items("build"), func(wf *cyclonev1alpha1.Workflow) {
		wf.Spec.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		}
	})
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(run.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded))

	// A stage the quota cannot admit says why on its status, and waits.
	createWorkflow(t, ns, "unsized", []*cyclonev1alpha1.Stage{stage(ns, "plain", succeed("0s"))}, items("plain"))
	createRun(t, ns, "run2", "unsized")
	g.Eventually(func(g Gomega) {
		ss := getRun(g, ns, "run2").Status.Stages["plain"]
		g.Expect(ss).NotTo(BeNil())
		g.Expect(ss.Status.Phase).To(Equal(cyclonev1alpha1.StatusPending))
		g.Expect(ss.Status.Reason).To(Equal(ReasonPodRefused))
		g.Expect(ss.Status.Message).To(And(ContainSubstring(convention.PodName("run2", "plain", 1)), ContainSubstring("cyclone-quota"), ContainSubstring("must specify")))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// TestEngine_imageOutputGetsADockerDaemon: a stage that outputs an Image
// resource runs with Cyclone's Docker daemon sidecar, which the API
// server accepts as a native sidecar, and the stage ends when its
// containers do.
func TestEngine_imageOutputGetsADockerDaemon(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	// The daemon runs privileged: only a privileged Tenant may have it.
	setPodSecurity(t, ns, podsecurity.Privileged)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	startEngine(t, env.Config, testConfig())
	img := &cyclonev1alpha1.Resource{ObjectMeta: metav1.ObjectMeta{Name: "img", Namespace: ns}, Spec: cyclonev1alpha1.ResourceSpec{
		Type: cyclonev1alpha1.ImageResourceType, Resolver: "cyclone-resolver-image:v1",
		Parameters: []cyclonev1alpha1.ParameterItem{{Name: "IMAGE", Value: ptr.To("registry.example/app:1")}}}}
	g.Expect(k8s.Create(bg, img)).To(Succeed())
	build := stage(ns, "build", succeed("2s"))
	build.Spec.Pod.Outputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "img"}}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{build}, items("build"))
	createRun(t, ns, "run1", "wf")

	pod := &corev1.Pod{}
	g.Eventually(func() error { return k8s.Get(bg, key(worker, convention.PodName("run1", "build", 1)), pod) }).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(pod.Spec.InitContainers).To(ContainElement(And(
		HaveField("Name", "csc-dind"),
		HaveField("RestartPolicy", HaveValue(Equal(corev1.ContainerRestartPolicyAlways))))))
	waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
}

// TestEngine_fileArtifactsPassBetweenStages: a stage that leaves a file at
// its output artifact's path runs its command through gyre collect, and
// the next stage mounts that file at its input artifact's path, as
// Cyclone passes artifacts.
func TestEngine_fileArtifactsPassBetweenStages(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns, worker := startKeepingPods(t)
	test := stage(ns, "test", succeed("0s"))
	test.Spec.Pod.Spec.Containers[0].Command = []string{"go", "test", "-coverprofile=coverage.out", "./..."}
	test.Spec.Pod.Outputs.Artifacts = []cyclonev1alpha1.ArtifactItem{{Name: "coverage", Path: "/src/coverage.out"}}
	report := stage(ns, "report", succeed("0s"))
	report.Spec.Pod.Inputs.Artifacts = []cyclonev1alpha1.ArtifactItem{{Name: "cov", Path: "/in/coverage.out"}}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{test, report}, items("test", "report:test"), func(wf *cyclonev1alpha1.Workflow) {
		wf.Spec.Stages[1].Artifacts = []cyclonev1alpha1.ArtifactItem{{Name: "cov", Source: "test/coverage"}}
	})
	createRun(t, ns, "run1", "wf")
	g.Eventually(func(g Gomega) {
		g.Expect(getRun(g, ns, "run1").Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	}).WithTimeout(time.Minute).Should(Succeed())

	producer, consumer := &corev1.Pod{}, &corev1.Pod{}
	g.Expect(k8s.Get(bg, key(worker, convention.PodName("run1", "test", 1)), producer)).To(Succeed())
	g.Expect(producer.Spec.Containers[0].Command).To(HaveExactElements(convention.ToolsBinary, "collect", "--artifact=coverage=/src/coverage.out",
		"--", "go", "test", "-coverprofile=coverage.out", "./..."))
	g.Expect(k8s.Get(bg, key(worker, convention.PodName("run1", "report", 1)), consumer)).To(Succeed())
	g.Expect(consumer.Spec.Containers[0].VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: podbuild.DataVolume, ReadOnly: true,
		MountPath: "/in/coverage.out", SubPath: "run1/artifacts/test/coverage/coverage.out"}))
}

// TestEngine_secretReferences: a stage argument that refers to a Secret of
// the run's namespace reaches the Pod from the run's Secret; one that
// refers to another namespace fails the stage, saying why.
func TestEngine_secretReferences(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns, worker := startKeepingPods(t)
	g.Expect(k8s.Create(bg, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: ns},
		Data: map[string][]byte{"password": []byte("hunter2")}})).To(Succeed())
	push := stage(ns, "push", succeed("0s"))
	push.Spec.Pod.Inputs.Arguments = []cyclonev1alpha1.ArgumentValue{{Name: "password", Value: ptr.To("${secrets." + ns + ":registry/data.password}")}}
	push.Spec.Pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", Value: "{{ password }}"}}
	steal := stage(ns, "steal", succeed("0s"))
	steal.Spec.Pod.Inputs.Arguments = []cyclonev1alpha1.ArgumentValue{{Name: "password", Value: ptr.To("${secrets.kube-system:bootstrap/data.token}")}}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{push, steal}, items("push", "steal"))
	createRun(t, ns, "run1", "wf")

	g.Eventually(func(g Gomega) {
		run := getRun(g, ns, "run1")
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
		g.Expect(run.Status.Stages["steal"].Status.Message).To(ContainSubstring("a run may read Secrets of its own namespace " + ns + " only"))
		g.Expect(run.Status.Stages["push"].Status.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	}).WithTimeout(time.Minute).Should(Succeed())
	pod := &corev1.Pod{}
	g.Expect(k8s.Get(bg, key(worker, convention.PodName("run1", "push", 1)), pod)).To(Succeed())
	g.Expect(pod.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: podbuild.RunSecretName(convention.PodName("run1", "push", 1))}, Key: "GYRE_SECRET_0"}}}))
}

// startKeepingPods makes a tenant and starts an engine that keeps a
// finished run's Pods for a minute, for the test to look at them. It
// returns the tenant and worker namespaces.
func startKeepingPods(t *testing.T) (ns, worker string) {
	ns = newTenant(t)
	cfg := testConfig()
	cfg.GCDelay = time.Minute
	startEngine(t, env.Config, cfg)
	return ns, "cyclone-" + Tenant(ns) + "-worker"
}
