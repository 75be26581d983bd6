package shard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/reconciler"
)

// pipeline is every test tenant's directory: Workflow quick runs one
// stage that succeeds at once; Workflow held runs stage hold, whose Pod
// runs until the test gives it kwok's succeed fate, then stage after.
const pipeline = `apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: hello
spec:
  pod:
    metadata:
      annotations:
        test.gyre.dev/result: succeed
    spec:
      containers:
      - name: main
        image: busybox:1.37
        command: [/bin/sh, -c, echo hello]
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: hold
spec:
  pod:
    spec:
      containers:
      - name: main
        image: busybox:1.37
        command: [/bin/sh, -c, sleep 3600]
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: after
spec:
  pod:
    metadata:
      annotations:
        test.gyre.dev/result: succeed
    spec:
      containers:
      - name: main
        image: busybox:1.37
        command: [/bin/sh, -c, echo after]
---
apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: quick
spec:
  stages:
  - name: hello
---
apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: held
spec:
  stages:
  - name: hold
  - name: after
    depends: [hold]
`

// shard is one `gyre controller --shard` replica running in the test.
type shard struct {
	name   string
	mgr    ctrl.Manager
	writes *writes
}

// startShard runs gyre's controllers as `gyre controller --shard name`
// builds them, recording every write they send.
func startShard(t *testing.T, name string) *shard {
	t.Helper()
	g := NewWithT(t)
	o := manager.Options{
		Options:     mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0", Shard: name},
		ArtifactDir: t.TempDir(),
		Exec: exec.Config{
			GCPodAnnotations: map[string]string{testcluster.AnnotationResult: "succeed"},
			// Stage Pods stay after their run, to be counted.
			GCDelay:      time.Hour,
			RetryBackoff: 200 * time.Millisecond,
			WaitInterval: 500 * time.Millisecond,
		},
	}
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	s := &shard{name: name, writes: &writes{}}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(s.writes.wrap)
	opts := o.Manager(scheme)
	// Both shards' controllers run in this one process.
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	s.mgr, err = ctrl.NewManager(cfg, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(manager.Setup(s.mgr, o)).To(Succeed())
	testcluster.StartManager(t, s.mgr)
	return s
}

// caches reports whether the shard's manager has Tenant name in its cache.
func (s *shard) caches(ctx context.Context, name string) (bool, error) {
	err := s.mgr.GetCache().Get(ctx, client.ObjectKey{Name: name}, &gyrev1alpha1.Tenant{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// newTenant creates Repository and Tenant name in shard (no label for
// ""), rendering tenants/name of the repository at url, and a volume for
// the Tenant's PVC.
func newTenant(t *testing.T, name, url, repoShard, tenantShard string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	labels := func(shard string) map[string]string {
		if shard == "" {
			return nil
		}
		return map[string]string{convention.ShardLabel: shard}
	}
	objs := []client.Object{
		&corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "shard-" + name},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: t.TempDir()}},
			},
		},
		&gyrev1alpha1.Repository{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(repoShard)},
			Spec: gyrev1alpha1.RepositorySpec{
				URL:      url,
				Ref:      &gyrev1alpha1.GitRef{Branch: "main"},
				Interval: &metav1.Duration{Duration: 2 * time.Second},
			},
		},
		&gyrev1alpha1.Tenant{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(tenantShard)},
			Spec: gyrev1alpha1.TenantSpec{
				RepositoryRef: gyrev1alpha1.ObjectReference{Name: name},
				Storage:       &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
			},
		},
	}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed(), "%T %s", o, name)
		testcluster.DeleteAtCleanup(t, k8s, o)
	}
}

// long waits for f as long as a tenant takes to converge and a run to
// end on a shared machine.
func long(g Gomega, f func(g Gomega)) {
	g.Eventually(f).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
}

func tenantReady(g Gomega, name string) *gyrev1alpha1.Tenant {
	got := &gyrev1alpha1.Tenant{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: name}, got)).To(Succeed())
	g.Expect(apimeta.IsStatusConditionTrue(got.Status.Conditions, meta.ReadyCondition)).To(BeTrue(), "tenant %s: %v", name, got.Status.Conditions)
	return got
}

func startRun(g Gomega, tenant, name, workflow string) *cyclonev1alpha1.WorkflowRun {
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: convention.Namespace(tenant)},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			WorkflowRef: &corev1.ObjectReference{Kind: "workflow.cyclone.dev", Name: workflow},
			Timeout:     "5m",
		},
	}
	g.Expect(k8s.Create(context.Background(), run)).To(Succeed())
	return run
}

func runSucceeded(g Gomega, run *cyclonev1alpha1.WorkflowRun) {
	got := &cyclonev1alpha1.WorkflowRun{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(run), got)).To(Succeed())
	g.Expect(got.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "run %s: %+v", run.Name, got.Status.Overall)
}

// stagePods lists the stage Pods of run, by stage.
func stagePods(g Gomega, tenant string, run *cyclonev1alpha1.WorkflowRun) map[string][]string {
	got := &cyclonev1alpha1.WorkflowRun{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(run), got)).To(Succeed())
	pods := &corev1.PodList{}
	g.Expect(k8s.List(context.Background(), pods, client.InNamespace(convention.WorkerNamespace(tenant)),
		client.MatchingLabels{convention.LabelRunUID: string(got.UID), convention.LabelPodKind: convention.PodKindWorkload})).To(Succeed())
	out := map[string][]string{}
	for _, p := range pods.Items {
		stage := p.Annotations[convention.AnnotationStage]
		out[stage] = append(out[stage], p.Name)
	}
	return out
}

// Paths of the writes that touch a tenant: its Tenant and its Repository
// (cluster-scoped, named after it), and anything in its namespaces.
func tenantPath(name string) string     { return "/tenants/" + name }
func repositoryPath(name string) string { return "/repositories/" + name }
func namespacePath(name string) string  { return "/namespaces/" + convention.Namespace(name) + "/" }
func workerPath(name string) string     { return "/namespaces/" + convention.WorkerNamespace(name) + "/" }

func TestShard_tenantsFollowTheirShardAndMoveWithTheirRuns(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()

	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "pipelines.git")
	for _, tenant := range []string{"alpha", "beta"} {
		repo.WriteFile("tenants/"+tenant+"/pipeline.yaml", pipeline)
		repo.WriteFile("tenants/"+tenant+"/kustomization.yaml", "resources:\n- pipeline.yaml\n")
	}
	repo.Commit("two tenants")
	repo.Push()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	url := srv.URL + "/pipelines.git"

	a, b := startShard(t, "a"), startShard(t, "b")
	newTenant(t, "alpha", url, "a", "a")
	newTenant(t, "beta", url, "b", "b")
	// A Tenant of shard a rendering from a Repository of shard b.
	newTenant(t, "gamma", url, "b", "a")

	t.Log("Each shard converges its own Tenants and no other")
	long(g, func(g Gomega) {
		tenantReady(g, "alpha")
		tenantReady(g, "beta")
	})
	g.Expect(a.writes.matching(tenantPath("alpha"))).NotTo(BeEmpty(), "shard a converges alpha")
	g.Expect(b.writes.matching(tenantPath("beta"))).NotTo(BeEmpty(), "shard b converges beta")
	g.Expect(a.writes.matching(repositoryPath("alpha"))).NotTo(BeEmpty(), "shard a fetches alpha's Repository")
	for _, other := range []struct {
		s     *shard
		names []string
	}{{a, []string{"beta"}}, {b, []string{"alpha", "gamma"}}} {
		for _, n := range other.names {
			g.Expect(other.s.writes.matching(tenantPath(n))).To(BeEmpty(), "shard %s leaves Tenant %s alone", other.s.name, n)
			g.Expect(other.s.writes.matching(namespacePath(n))).To(BeEmpty(), "shard %s writes nothing in %s's namespace", other.s.name, n)
		}
	}
	g.Expect(a.writes.matching(repositoryPath("beta"))).To(BeEmpty(), "shard a does not fetch beta's Repository")

	t.Log("A Tenant whose Repository is in another shard says so")
	long(g, func(g Gomega) {
		got := &gyrev1alpha1.Tenant{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "gamma"}, got)).To(Succeed())
		ready := apimeta.FindStatusCondition(got.Status.Conditions, meta.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(reconciler.ReasonRepositoryInOtherShard))
		g.Expect(ready.Message).To(ContainSubstring(`Repository gamma is in shard "b" but Tenant gamma is in shard "a"`))
	})

	t.Log("Runs execute in their Tenant's shard")
	alphaRun, betaRun := startRun(g, "alpha", "quick-1", "quick"), startRun(g, "beta", "quick-1", "quick")
	long(g, func(g Gomega) {
		runSucceeded(g, alphaRun)
		runSucceeded(g, betaRun)
	})
	g.Expect(a.writes.matching("POST", workerPath("alpha"), "/pods")).To(HaveLen(1), "shard a creates alpha's stage Pod")
	g.Expect(b.writes.matching("POST", workerPath("beta"), "/pods")).To(HaveLen(1), "shard b creates beta's stage Pod")
	g.Expect(a.writes.matching(workerPath("beta"))).To(BeEmpty())
	g.Expect(b.writes.matching(workerPath("alpha"))).To(BeEmpty())
	g.Expect(b.writes.matching(namespacePath("alpha"))).To(BeEmpty())

	t.Log("A run of alpha starts in shard a")
	a.writes.reset()
	b.writes.reset()
	held := startRun(g, "alpha", "held-1", "held")
	var holdPod string
	long(g, func(g Gomega) {
		pods := stagePods(g, "alpha", held)
		g.Expect(pods["hold"]).To(HaveLen(1))
		holdPod = pods["hold"][0]
		pod := &corev1.Pod{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: convention.WorkerNamespace("alpha"), Name: holdPod}, pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		// The run's status follows its Pods by up to a second.
		run := &cyclonev1alpha1.WorkflowRun{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(held), run)).To(Succeed())
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusRunning))
	})
	g.Expect(a.writes.matching("POST", workerPath("alpha"), "/pods")).To(HaveLen(1), "shard a created the held stage's Pod")

	t.Log("alpha moves to shard b, its Repository with it")
	for _, o := range []client.Object{&gyrev1alpha1.Repository{}, &gyrev1alpha1.Tenant{}} {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "alpha"}, o)).To(Succeed())
		before := o.DeepCopyObject().(client.Object)
		o.SetLabels(map[string]string{convention.ShardLabel: "b"})
		g.Expect(k8s.Patch(ctx, o, client.MergeFrom(before))).To(Succeed())
	}
	long(g, func(g Gomega) {
		inA, err := a.caches(ctx, "alpha")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(inA).To(BeFalse(), "shard a has let alpha go")
		inB, err := b.caches(ctx, "alpha")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(inB).To(BeTrue(), "shard b has taken alpha")
	})
	got := &cyclonev1alpha1.WorkflowRun{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(held), got)).To(Succeed())
	g.Expect(got.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusRunning), "the run is still in flight when alpha moves")
	a.writes.reset()

	t.Log("The held stage ends; shard b finishes the run, one Pod per stage")
	pod := &corev1.Pod{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: convention.WorkerNamespace("alpha"), Name: holdPod}, pod)).To(Succeed())
	release := client.MergeFrom(pod.DeepCopy())
	metav1.SetMetaDataAnnotation(&pod.ObjectMeta, testcluster.AnnotationResult, "succeed")
	g.Expect(k8s.Patch(ctx, pod, release)).To(Succeed())
	long(g, func(g Gomega) { runSucceeded(g, held) })
	g.Expect(stagePods(g, "alpha", held)).To(SatisfyAll(HaveLen(2), HaveKeyWithValue("hold", HaveLen(1)), HaveKeyWithValue("after", HaveLen(1))))
	g.Expect(b.writes.matching("POST", workerPath("alpha"), "/pods")).To(HaveLen(1), "shard b created the next stage's Pod")
	g.Expect(b.writes.matching(namespacePath("alpha"), "/workflowruns/held-1")).NotTo(BeEmpty(), "shard b wrote the run's status")

	t.Log("shard b converges alpha from a new commit and runs its new runs; shard a touches nothing of alpha")
	repo.WriteFile("tenants/alpha/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  moved: \"true\"\n")
	repo.WriteFile("tenants/alpha/kustomization.yaml", "resources:\n- pipeline.yaml\n- settings.yaml\n")
	repo.Commit("alpha's settings")
	repo.Push()
	long(g, func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: convention.Namespace("alpha"), Name: "settings"}, &corev1.ConfigMap{})).To(Succeed())
		tn := tenantReady(g, "alpha")
		g.Expect(tn.Status.Targets).NotTo(BeEmpty())
		g.Expect(tn.Status.Targets[0].LastAppliedRevision).To(HaveSuffix(repo.Head()))
	})
	after := startRun(g, "alpha", "quick-2", "quick")
	long(g, func(g Gomega) { runSucceeded(g, after) })
	g.Expect(b.writes.matching(tenantPath("alpha"))).NotTo(BeEmpty(), "shard b converges alpha")
	g.Expect(b.writes.matching(repositoryPath("alpha"))).NotTo(BeEmpty(), "shard b fetches alpha's Repository")
	for _, p := range []string{tenantPath("alpha"), repositoryPath("alpha"), namespacePath("alpha"), workerPath("alpha")} {
		g.Expect(a.writes.matching(p)).To(BeEmpty(), fmt.Sprintf("shard a writes nothing to %s after the move", p))
	}
}
