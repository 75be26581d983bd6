package reconciler

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/source"
)

// runsPipeline is a tenant's Stage and Workflow.
const runsPipeline = `apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: build
spec:
  pod:
    spec:
      containers:
      - name: main
        image: golang:1.28
        command: [go, build, ./...]
---
apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: ci
spec:
  stages:
  - name: build
`

// runYAML is a WorkflowRun of the ci Workflow with one parameter.
func runYAML(name, version string) string {
	return `apiVersion: cyclone.dev/v1alpha1
kind: WorkflowRun
metadata:
  name: ` + name + `
spec:
  workflowRef:
    name: ci
  globalVariables:
  - name: VERSION
    value: "` + version + `"
`
}

// writeRunsTenant writes a tenant directory with the pipeline, the runs
// and a ConfigMap with value.
func writeRunsTenant(repo *gitserver.Repo, tenant, value string, runs ...string) {
	dir := "tenants/" + tenant + "/"
	repo.WriteFile(dir+"pipeline.yaml", runsPipeline)
	repo.WriteFile(dir+"runs.yaml", strings.Join(runs, "---\n"))
	repo.WriteFile(dir+"settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: \""+value+"\"\n")
	repo.WriteFile(dir+"kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- pipeline.yaml\n- runs.yaml\n- settings.yaml\n")
}

// newRunsFixture is a tenant fixture on the shared control plane alone,
// without an execution cluster.
func newRunsFixture(t *testing.T, g *WithT) *tenantFixture {
	root := t.TempDir()
	f := &tenantFixture{t: t, repo: gitserver.NewRepo(t, root, "runs.git"), git: &source.Git{CacheDir: t.TempDir()}, writes: &writeCounter{}}
	var err error
	f.srv, err = gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(f.srv.Close)
	f.repo.WriteFile("README.md", "runs\n")
	f.repoObj = &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "runs-"},
		Spec:       gyrev1alpha1.RepositorySpec{URL: f.srv.URL + "/runs.git", Interval: &metav1.Duration{Duration: time.Hour}, Suspend: true},
	}
	g.Expect(testEnv.Client.Create(context.Background(), f.repoObj)).To(Succeed())
	deleteAtCleanup(t, f.repoObj)
	return f
}

// createRunsTenant creates a Tenant with the default target only.
func (f *tenantFixture) createRunsTenant(g *WithT, name string) {
	tn := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: f.repoObj.Name},
			Interval:      &metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(testEnv.Client.Create(context.Background(), tn)).To(Succeed())
	f.t.Cleanup(func() { _ = client.IgnoreNotFound(testEnv.Client.Delete(context.Background(), tn)) })
}

// requestTenant asks for a reconcile of the Tenant and waits until it
// was handled.
func requestTenant(g *WithT, name string) {
	token := time.Now().Format(time.RFC3339Nano)
	tn := getTenant(g, name)
	p := client.MergeFrom(tn.DeepCopy())
	if tn.Annotations == nil {
		tn.Annotations = map[string]string{}
	}
	tn.Annotations[gyrev1alpha1.ReconcileRequestAnnotation] = token
	g.Expect(testEnv.Client.Patch(context.Background(), tn, p)).To(Succeed())
	eventually(g, func(g Gomega) {
		g.Expect(getTenant(g, name).Status.LastHandledReconcileAt).To(Equal(token))
	})
}

func runExists(g Gomega, tenant, name string) bool {
	err := testEnv.Client.Get(context.Background(), client.ObjectKey{Namespace: "cyclone-" + tenant, Name: name}, &cyclonev1alpha1.WorkflowRun{})
	if apierrors.IsNotFound(err) {
		return false
	}
	g.Expect(err).NotTo(HaveOccurred())
	return true
}

func deleteRun(g *WithT, tenant, name string) {
	run := &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-" + tenant, Name: name}}
	g.Expect(testEnv.Client.Delete(context.Background(), run)).To(Succeed())
	eventually(g, func(g Gomega) { g.Expect(runExists(g, tenant, name)).To(BeFalse()) })
}

func TestTenantReconciler_runsOnce(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newRunsFixture(t, g)
	tenant := "once"
	writeRunsTenant(f.repo, tenant, "1", runYAML("release-1", "1.0.0"), runYAML("release-2", "2.0.0"))
	rev := f.publish(g, "two runs")
	f.start(g)
	f.createRunsTenant(g, tenant)
	expectApplied(g, tenant, rev)

	t.Run("Every run in Git is created once and remembered with its spec digest in the target status.", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(runExists(g, tenant, "release-1")).To(BeTrue())
		g.Expect(runExists(g, tenant, "release-2")).To(BeTrue())
		st := targetStatus(getTenant(g, tenant), "default")
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.StartedRuns).To(HaveLen(2))
		g.Expect(st.StartedRuns[0].ID).To(Equal("cyclone-once_release-1_cyclone.dev_WorkflowRun"))
		g.Expect(st.StartedRuns[0].Digest).To(MatchRegexp("^[0-9a-f]{16}$"))
	})

	t.Run("A run deleted by hand is not created again, by the watch or by later reconciles.", func(t *testing.T) {
		g := NewWithT(t)
		deleteRun(g, tenant, "release-1")
		for range 3 {
			requestTenant(g, tenant)
			g.Expect(runExists(g, tenant, "release-1")).To(BeFalse())
		}
		st := targetStatus(getTenant(g, tenant), "default")
		g.Expect(st.Inventory.Entries).To(ContainElement(HaveField("ID", "cyclone-once_release-1_cyclone.dev_WorkflowRun")), "a run in Git stays in the inventory")
	})

	t.Run("A run deleted while the controller is down is not created again by the next one.", func(t *testing.T) {
		g := NewWithT(t)
		f.stop()
		deleteRun(g, tenant, "release-2")
		f.start(g)
		for range 2 {
			requestTenant(g, tenant)
			g.Expect(runExists(g, tenant, "release-2")).To(BeFalse())
		}
	})

	t.Run("A run edited in Git under a started name is not run again, the rest applies, and the Tenant says what to do.", func(t *testing.T) {
		g := NewWithT(t)
		writeRunsTenant(f.repo, tenant, "2", runYAML("release-1", "1.0.1"), runYAML("release-2", "2.0.0"), runYAML("release-3", "3.0.0"))
		rev := f.publish(g, "edit release-1, add release-3")
		expectApplied(g, tenant, rev)
		g.Expect(runExists(g, tenant, "release-1")).To(BeFalse())
		g.Expect(runExists(g, tenant, "release-3")).To(BeTrue(), "a new run is created")
		cm := &corev1.ConfigMap{}
		g.Expect(testEnv.Client.Get(context.Background(), client.ObjectKey{Namespace: "cyclone-" + tenant, Name: "settings"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("value", "2"), "the rest of the target applies")
		tn := getTenant(g, tenant)
		ready := apimeta.FindStatusCondition(tn.Status.Conditions, meta.ReadyCondition)
		g.Expect(ready.Reason).To(Equal(ReasonRunChanged))
		g.Expect(ready.Message).To(And(ContainSubstring("cyclone-once/release-1"), ContainSubstring("tenants/once"), ContainSubstring("give the run a new name")))
		g.Expect(targetStatus(tn, "default").StartedRuns).To(HaveLen(3))
		eventually(g, func(g Gomega) {
			list := &eventsv1.EventList{}
			g.Expect(testEnv.Client.List(context.Background(), list)).To(Succeed())
			var notes []string
			for _, e := range list.Items {
				if e.Regarding.Kind == "Tenant" && e.Regarding.Name == tenant && e.Reason == ReasonRunChanged {
					notes = append(notes, e.Note)
				}
			}
			g.Expect(notes).To(ConsistOf(ContainSubstring("WorkflowRun cyclone-once/release-1 under tenants/once already ran")))
		})
	})

	t.Run("A run that leaves Git is forgotten.", func(t *testing.T) {
		g := NewWithT(t)
		writeRunsTenant(f.repo, tenant, "2", runYAML("release-3", "3.0.0"))
		rev := f.publish(g, "keep release-3 only")
		expectApplied(g, tenant, rev)
		st := targetStatus(getTenant(g, tenant), "default")
		g.Expect(st.StartedRuns).To(ConsistOf(HaveField("ID", "cyclone-once_release-3_cyclone.dev_WorkflowRun")))
		ready := apimeta.FindStatusCondition(getTenant(g, tenant).Status.Conditions, meta.ReadyCondition)
		g.Expect(ready.Reason).To(Equal(ReasonApplied))
	})
}

// podsCreated watches the Pods of a namespace and counts those created,
// by name.
func podsCreated(t *testing.T, g *WithT, namespace string) func() []string {
	wc, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testEnv.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(context.Background(), &corev1.PodList{}, client.InNamespace(namespace))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	var names []string
	go func() {
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
				mu.Lock()
				names = append(names, pod.Name)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
}

func TestTenantReconciler_historyLimitBelowTheRunsInGit(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newRunsFixture(t, g)
	f.engine = func(mgr ctrl.Manager) error {
		// No PVC: each stage gets an emptyDir and there is no GC Pod.
		e := &exec.Engine{Config: exec.Config{PVCName: func(string) string { return "" }, RetryBackoff: 200 * time.Millisecond, WaitInterval: 500 * time.Millisecond}}
		return e.SetupWithManager(mgr)
	}
	tenant := "history"
	// The worker namespace is watched before the Tenant makes it, so
	// no Pod goes uncounted.
	pods := podsCreated(t, g, "cyclone-"+tenant+"-worker")
	writeRunsTenant(f.repo, tenant, "1", runYAML("release-1", "1.0.0"), runYAML("release-2", "2.0.0"), runYAML("release-3", "3.0.0"))
	f.repo.WriteFile("tenants/"+tenant+"/pipeline.yaml", strings.Replace(runsPipeline, "spec:\n  stages:", "spec:\n  historyLimit: 1\n  stages:", 1))
	rev := f.publish(g, "three runs, history of one")
	f.start(g)
	f.createRunsTenant(g, tenant)
	expectApplied(g, tenant, rev)

	runs := func(g Gomega) []string {
		list := &cyclonev1alpha1.WorkflowRunList{}
		g.Expect(testEnv.Client.List(context.Background(), list, client.InNamespace("cyclone-"+tenant))).To(Succeed())
		var names []string
		for _, r := range list.Items {
			names = append(names, r.Name)
		}
		return names
	}
	stagePods := func() map[string]int {
		byRun := map[string]int{}
		for _, name := range pods() {
			if run, _, ok := strings.Cut(name, "-build-"); ok {
				byRun[run]++
			}
		}
		return byRun
	}
	g.Eventually(func(g Gomega) {
		g.Expect(runs(g)).To(HaveLen(1))
		g.Expect(stagePods()).To(HaveLen(3))
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	// Settled: no run comes back, none runs twice, and the Tenant is no
	// longer written.
	version := getTenant(g, tenant).ResourceVersion
	g.Consistently(func(g Gomega) {
		g.Expect(runs(g)).To(HaveLen(1))
		g.Expect(stagePods()).To(Equal(map[string]int{"release-1": 1, "release-2": 1, "release-3": 1}))
	}).WithTimeout(5 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	g.Expect(getTenant(g, tenant).ResourceVersion).To(Equal(version))
}
