package exec

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
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
					g.Expect(k8s.Get(bg, key("cyclone-"+Tenant(ns)+"-worker", podName("run1", "s", 1)), pod)).To(Succeed())
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

func TestEngine_gcRetriesThenGivesUp(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
	cfg := testConfig()
	cfg.GCPodAnnotations = map[string]string{testcluster.AnnotationResult: "fail"}
	cfg.GCAttempts = 2
	startEngine(t, env.Config, cfg)
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"))
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(run.Status.Cleaned).To(BeFalse())
	g.Expect(run.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCFailed))
	g.Expect(run.Status.GC.Attempt).To(Equal(int32(2)))
	g.Expect(run.Status.GC.Message).To(ContainSubstring("attempt 2: Error: container gc exited with code 1"))
	g.Eventually(func(g Gomega) {
		n := 0
		for _, e := range rec.all() {
			if e.Type == watch.Added && e.Name == "run1-gc" {
				n++
			}
		}
		g.Expect(n).To(Equal(2))
	}).Should(Succeed())
}

// TestEngine_gcDelayKeepsPodsForAWhile: with a GC delay, a finished
// run's stage Pod stays for the delay after the run completed, then GC
// removes it and the data; deleting a run does not wait.
func TestEngine_gcDelayKeepsPodsForAWhile(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	rec := recordPods(t, k8s, worker)
	cfg := testConfig()
	cfg.GCDelay = 3 * time.Second
	startEngine(t, env.Config, cfg)
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"))
	createRun(t, ns, "kept", "wf")

	var completed time.Time
	g.Eventually(func(g Gomega) {
		run := getRun(g, ns, "kept")
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
		completed = run.Status.Overall.CompletionTime.Time
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(k8s.Get(bg, key(worker, podName("kept", "a", 1)), &corev1.Pod{})).To(Succeed())
		g.Expect(getRun(g, ns, "kept").Status.Cleaned).To(BeFalse())
	}).WithTimeout(time.Until(completed.Add(cfg.GCDelay))).WithPolling(200 * time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getRun(g, ns, "kept").Status.Cleaned).To(BeTrue())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(time.Now()).To(BeTemporally(">=", completed.Add(cfg.GCDelay)))
	g.Expect(rec.all()).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", "kept-gc"))))

	// A deleted run is cleaned at once.
	run := createRun(t, ns, "deleted", "wf")
	g.Eventually(func(g Gomega) {
		g.Expect(getRun(g, ns, "deleted").Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(k8s.Delete(bg, run)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(bg, key(ns, "deleted"), &cyclonev1alpha1.WorkflowRun{}))
	}).WithTimeout(cfg.GCDelay).Should(BeTrue())
	g.Expect(rec.all()).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", "deleted-gc"))))
}

func TestEngine_deletingARunCleansItsData(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
	startEngine(t, env.Config, testConfig())
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "slow", forever())}, items("slow"))
	run := createRun(t, ns, "run1", "wf")
	g.Eventually(rec.created).WithTimeout(30 * time.Second).Should(ContainElement(podName("run1", "slow", 1)))
	g.Expect(k8s.Delete(bg, run)).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(bg, key(ns, "run1"), &cyclonev1alpha1.WorkflowRun{}))
	}).WithTimeout(30 * time.Second).Should(BeTrue())
	events := rec.all()
	g.Expect(events).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", podName("run1", "slow", 1)))))
	g.Expect(events).To(ContainElement(And(HaveField("Type", watch.Added), HaveField("Name", "run1-gc"))))
	g.Expect(events).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", "run1-gc"))))
}

func TestEngine_historyLimitKeepsTheNewestRuns(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	startEngine(t, env.Config, testConfig())
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"),
		func(wf *cyclonev1alpha1.Workflow) { wf.Spec.HistoryLimit = ptr.To[int32](2) })
	for _, name := range []string{"run1", "run2", "run3", "run4"} {
		createRun(t, ns, name, "wf")
		g.Eventually(func(g Gomega) {
			run := getRun(g, ns, name)
			g.Expect(run.Status.Cleaned).To(BeTrue())
		}).WithTimeout(30 * time.Second).Should(Succeed())
	}
	g.Eventually(func(g Gomega) {
		list := &cyclonev1alpha1.WorkflowRunList{}
		g.Expect(k8s.List(bg, list, client.InNamespace(ns))).To(Succeed())
		var names []string
		for _, r := range list.Items {
			names = append(names, r.Name)
		}
		g.Expect(names).To(ConsistOf("run3", "run4"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

func TestEngine_notifications(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	var mu sync.Mutex
	var got []cyclonev1alpha1.WorkflowRun
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var run cyclonev1alpha1.WorkflowRun
		if r.Method != http.MethodPost || json.Unmarshal(body, &run) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, run)
		mu.Unlock()
	}))
	defer srv.Close()
	ms := startMailServer(t)
	slack := startSlack(t)
	ns := newTenant(t)
	startEngine(t, env.Config, notifyConfig(testConfig(), ms, slack))
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"),
		func(wf *cyclonev1alpha1.Workflow) {
			wf.Spec.Notification = cyclonev1alpha1.Notification{Policy: cyclonev1alpha1.NotificationPolicyAlways, Receivers: []cyclonev1alpha1.NotificationReceiver{
				{Type: cyclonev1alpha1.NotificationTypeWebhook, Addresses: []string{srv.URL}},
				{Type: cyclonev1alpha1.NotificationTypeEmail, Addresses: []string{"ops@example.com"}},
				{Type: cyclonev1alpha1.NotificationTypeSlack, Addresses: []string{"#ci"}},
			}}
		})
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	succeeded := cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}
	g.Expect(run.Status.Notifications).To(Equal(map[string]cyclonev1alpha1.NotificationStatus{
		"Webhook:" + srv.URL:    succeeded,
		"Email:ops@example.com": succeeded,
		"Slack:#ci":             succeeded,
	}))
	mails := ms.all()
	g.Expect(mails).To(HaveLen(1))
	g.Expect(mails[0].To).To(Equal([]string{"ops@example.com"}))
	g.Expect(mails[0].Subject).To(Equal("[gyre] WorkflowRun " + ns + "/run1 Succeeded"))
	g.Expect(mails[0].Body).To(ContainSubstring("\n- a: Succeeded"))
	posts := slack.all()
	g.Expect(posts).To(HaveLen(1))
	g.Expect(posts[0].Channel).To(Equal("#ci"))
	g.Expect(posts[0].Text).To(Equal(mails[0].Body))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].Name).To(Equal("run1"))
	g.Expect(got[0].Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
}

// TestEngine_slowReceiverHoldsNoWorker: a receiver that does not answer
// keeps its run's notification pending, and nothing else: with a single
// reconcile worker, another run still runs to the end meanwhile. Once the
// receiver answers, the outcome is recorded and the run is cleaned.
func TestEngine_slowReceiverHoldsNoWorker(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	}))
	defer srv.Close()
	released := sync.OnceFunc(func() { close(release) })
	defer released()
	ns := newTenant(t)
	cfg := testConfig()
	cfg.MaxConcurrentReconciles = 1
	cfg.HTTPClient = &http.Client{} // no timeout: the receiver decides
	startEngine(t, env.Config, cfg)
	createWorkflow(t, ns, "slow", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"),
		func(wf *cyclonev1alpha1.Workflow) {
			wf.Spec.Notification = cyclonev1alpha1.Notification{Receivers: []cyclonev1alpha1.NotificationReceiver{
				{Type: cyclonev1alpha1.NotificationTypeWebhook, Addresses: []string{srv.URL}},
			}}
		})
	createWorkflow(t, ns, "fast", []*cyclonev1alpha1.Stage{stage(ns, "b", succeed("0s"))}, items("b"))
	createRun(t, ns, "waiting", "slow")
	g.Eventually(arrived).WithTimeout(time.Minute).Should(Receive())

	createRun(t, ns, "other", "fast")
	waitRun(t, ns, "other", cyclonev1alpha1.StatusSucceeded)
	waiting := getRun(g, ns, "waiting")
	g.Expect(waiting.Status.Notifications).To(BeEmpty())
	g.Expect(waiting.Status.Cleaned).To(BeFalse(), "GC waits for the notifications")

	released()
	run := waitRun(t, ns, "waiting", cyclonev1alpha1.StatusSucceeded)
	g.Expect(run.Status.Notifications).To(Equal(map[string]cyclonev1alpha1.NotificationStatus{
		"Webhook:" + srv.URL: {Result: cyclonev1alpha1.NotificationResultSucceeded},
	}))
}

// maxLive is the most stage Pods alive at once in the event stream.
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
	t.Run("A tenant with parallelism 2 runs two stages at a time across its runs.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		rec := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
		cfg := testConfig()
		cfg.TenantParallelism = 2
		cfg.MaxConcurrentReconciles = 1 // the tenant cap is counted from the cache
		_, stop := startEngine(t, env.Config, cfg)
		defer stop()
		wide(ns)
		createRun(t, ns, "run1", "wide")
		createRun(t, ns, "run2", "wide")
		waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
		waitRun(t, ns, "run2", cyclonev1alpha1.StatusSucceeded)
		g.Expect(maxLive(rec.all())).To(Equal(2))
	})
}

// TestEngine_reconcilesPerRun guards against excessive reconciles, as
// Tekton's tests do: a run of five stages in a chain, with its GC, takes
// fewer than maxReconciles reconciles.
func TestEngine_reconcilesPerRun(t *testing.T) {
	requireCluster(t)
	const maxReconciles = 30
	g := NewWithT(t)
	ns := newTenant(t)
	e, _ := startEngine(t, env.Config, testConfig())
	createWorkflow(t, ns, "chain", []*cyclonev1alpha1.Stage{
		stage(ns, "a", succeed("0s")), stage(ns, "b", succeed("0s")), stage(ns, "c", succeed("0s")), stage(ns, "d", succeed("0s")), stage(ns, "e", succeed("0s")),
	}, items("a", "b:a", "c:b", "d:c", "e:d"))
	createRun(t, ns, "run1", "chain")
	waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	// Let late events (the GC Pod's deletion) arrive.
	time.Sleep(time.Second)
	n := e.reconciles.Load()
	t.Logf("%d reconciles for a run of 5 stages", n)
	g.Expect(n).To(BeNumerically("<", maxReconciles))
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
		g.Expect(ss.Status.Message).To(And(ContainSubstring(podName("run2", "plain", 1)), ContainSubstring("cyclone-quota"), ContainSubstring("must specify")))
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
	g.Eventually(func() error { return k8s.Get(bg, key(worker, podName("run1", "build", 1)), pod) }).WithTimeout(30 * time.Second).Should(Succeed())
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
	g.Expect(k8s.Get(bg, key(worker, podName("run1", "test", 1)), producer)).To(Succeed())
	g.Expect(producer.Spec.Containers[0].Command).To(HaveExactElements(ToolsBinary, "collect", "--artifact=coverage=/src/coverage.out",
		"--", "go", "test", "-coverprofile=coverage.out", "./..."))
	g.Expect(k8s.Get(bg, key(worker, podName("run1", "report", 1)), consumer)).To(Succeed())
	g.Expect(consumer.Spec.Containers[0].VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: dataVolume, ReadOnly: true,
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
	g.Expect(k8s.Get(bg, key(worker, podName("run1", "push", 1)), pod)).To(Succeed())
	g.Expect(pod.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: runSecretName(podName("run1", "push", 1))}, Key: "GYRE_SECRET_0"}}}))
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
