package exec

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

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
		g.Expect(k8s.Get(bg, key(worker, convention.PodName("kept", "a", 1)), &corev1.Pod{})).To(Succeed())
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
	g.Eventually(rec.created).WithTimeout(30 * time.Second).Should(ContainElement(convention.PodName("run1", "slow", 1)))
	g.Expect(k8s.Delete(bg, run)).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(bg, key(ns, "run1"), &cyclonev1alpha1.WorkflowRun{}))
	}).WithTimeout(30 * time.Second).Should(BeTrue())
	events := rec.all()
	g.Expect(events).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", convention.PodName("run1", "slow", 1)))))
	g.Expect(events).To(ContainElement(And(HaveField("Type", watch.Added), HaveField("Name", "run1-gc"))))
	g.Expect(events).To(ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", "run1-gc"))))
}

// TestEngine_deletingARunWhoseEndIsHeldBackCleansItsData: a run deleted
// while its end waits for its GC Pod (see foldGC) goes once that GC Pod
// has removed its data, and with its Pods; no second GC Pod is made.
func TestEngine_deletingARunWhoseEndIsHeldBackCleansItsData(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	rec := recordPods(t, k8s, worker)
	cfg := testConfig()
	cfg.RunningReportDelay = time.Minute
	// Long enough that the run is still held back when the test
	// deletes it.
	cfg.GCPodAnnotations = succeed("6s")
	startEngine(t, env.Config, cfg)
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"))
	run := createRun(t, ns, "run1", "wf")
	g.Eventually(rec.created).WithTimeout(30 * time.Second).Should(ContainElement("run1-gc"))
	g.Expect(getRun(g, ns, "run1").Status.Overall.Phase).NotTo(Equal(cyclonev1alpha1.StatusSucceeded), "the end waits for the GC Pod")
	g.Expect(k8s.Delete(bg, run)).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(bg, key(ns, "run1"), &cyclonev1alpha1.WorkflowRun{}))
	}).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Expect(rec.all()).To(ContainElement(And(HaveField("Type", watch.Modified), HaveField("Name", "run1-gc"), HaveField("Phase", corev1.PodSucceeded))),
		"the run went once its data was removed")
	g.Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8s.List(bg, pods, client.InNamespace(worker))).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(rec.created()).To(HaveExactElements(convention.PodName("run1", "a", 1), "run1-gc"))
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
