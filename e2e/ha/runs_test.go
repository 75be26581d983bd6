package ha

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/testcluster"
)

// pipelineFiles is a tenant's directory in Git: a diamond of four stages
// whose kwok Pods succeed after delay.
func pipelineFiles(delay string) map[string]string {
	var b strings.Builder
	for _, s := range []string{"checkout", "test", "lint", "publish"} {
		fmt.Fprintf(&b, `---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: %s
spec:
  pod:
    metadata:
      annotations:
        %s: succeed
        %s: %s
    spec:
      containers:
      - name: main
        image: busybox
        command: ["true"]
`, s, testcluster.AnnotationResult, testcluster.AnnotationDelay, delay)
	}
	b.WriteString(`---
apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: diamond
spec:
  stages:
  - name: checkout
  - name: test
    depends: [checkout]
  - name: lint
    depends: [checkout]
  - name: publish
    depends: [test, lint]
`)
	return map[string]string{
		"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- pipeline.yaml\n",
		"pipeline.yaml":      b.String(),
	}
}

// podLog records every Pod the API server creates in a namespace, by
// UID, from a watch: a Pod created and deleted between two looks still
// counts.
type podLog struct {
	mu   sync.Mutex
	pods map[string]corev1.Pod // by UID
}

func watchPods(t *testing.T, ns string) *podLog {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	l := &podLog{pods: map[string]corev1.Pod{}}
	go func() {
		for e := range w.ResultChan() {
			pod, ok := e.Object.(*corev1.Pod)
			if !ok || e.Type == watch.Error {
				continue
			}
			l.mu.Lock()
			if _, seen := l.pods[string(pod.UID)]; !seen {
				l.pods[string(pod.UID)] = *pod
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// byRun counts the Pods created for each run UID, by stage ("gc" for the
// GC Pod).
func (l *podLog) byRun() map[string]map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]map[string]int{}
	for _, p := range l.pods {
		run := p.Labels[convention.LabelRunUID]
		if run == "" {
			continue
		}
		what := p.Annotations[convention.AnnotationStage]
		if p.Labels[convention.LabelPodKind] == convention.PodKindGC {
			what = "gc"
		}
		if out[run] == nil {
			out[run] = map[string]int{}
		}
		out[run][what]++
	}
	return out
}

// TestHA_aKilledLeaderLosesNoRunAndStartsNoPodTwice kills the leader
// while runs are in the middle of their stages: the replica that takes
// over finishes every run, each once, with one Pod per stage.
func TestHA_aKilledLeaderLosesNoRunAndStartsNoPodTwice(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	const tenant, runs = "ha-runs", 6

	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "pipelines.git")
	for path, content := range pipelineFiles("2s") {
		repo.WriteFile("tenants/"+tenant+"/"+path, content)
	}
	repo.Commit("pipelines")
	repo.Push()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)

	// Standing in for a storage provisioner: reserved for the tenant's
	// PVC, so that the binder need not match a claim to it.
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "ha-runs"},
		Spec: corev1.PersistentVolumeSpec{
			ClaimRef:                      &corev1.ObjectReference{Namespace: convention.WorkerNamespace(tenant), Name: convention.PVCName(tenant)},
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: t.TempDir()}},
		},
	}
	g.Expect(k8s.Create(ctx, pv)).To(Succeed())
	g.Expect(k8s.Create(ctx, &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{Name: "pipelines"},
		Spec: gyrev1alpha1.RepositorySpec{
			URL:      srv.URL + "/pipelines.git",
			Interval: &metav1.Duration{Duration: 2 * time.Second},
		},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx, &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: tenant},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: "pipelines"},
			Storage:       &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
		},
	})).To(Succeed())

	replicas := []*replica{startReplica(t, "runs-a"), startReplica(t, "runs-b")}
	var leader *replica
	g.Eventually(func(g Gomega) {
		var leaders []*replica
		for _, r := range replicas {
			if r.leads() {
				leaders = append(leaders, r)
			}
		}
		g.Expect(leaders).To(HaveLen(1), "one live replica leads")
		leader = leaders[0]
	}).WithTimeout(takeover).Should(Succeed())

	ns := convention.Namespace(tenant)
	g.Eventually(func(g Gomega) {
		wf := &cyclonev1alpha1.Workflow{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "diamond"}, wf)).To(Succeed())
	}).WithTimeout(90 * time.Second).Should(Succeed())
	// The runs need the tenant's PVC bound to the PersistentVolume above;
	// the failover, not the volume binder's pace, is under test.
	g.Eventually(func(g Gomega) {
		pvc := &corev1.PersistentVolumeClaim{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: convention.WorkerNamespace(tenant), Name: convention.PVCName(tenant)}, pvc)).To(Succeed())
		g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
	}).WithTimeout(90*time.Second).Should(Succeed(), "the tenant's PVC binds")
	pods := watchPods(t, convention.WorkerNamespace(tenant))

	for i := range runs {
		g.Expect(k8s.Create(ctx, &cyclonev1alpha1.WorkflowRun{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("diamond-%d", i), Namespace: ns},
			Spec:       cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: "diamond"}},
		})).To(Succeed())
	}
	// Kill once the runs are under way: the first stages have Pods and
	// none has finished its last stage.
	g.Eventually(func(g Gomega) {
		started := 0
		for _, stages := range pods.byRun() {
			if stages["checkout"] > 0 {
				started++
			}
		}
		g.Expect(started).To(Equal(runs))
	}).WithTimeout(90 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	for _, stages := range pods.byRun() {
		g.Expect(stages).NotTo(HaveKey("publish"), "the leader is killed before a run reaches its last stage")
	}
	killed := time.Now()
	leader.kill()
	replicas = remove(replicas, leader)
	g.Eventually(func(g Gomega) {
		g.Expect(replicas[0].leads()).To(BeTrue())
	}).WithTimeout(takeover).WithPolling(50 * time.Millisecond).Should(Succeed())
	t.Logf("replica %s took over %s after the leader was killed mid-run", replicas[0].name, time.Since(killed).Round(100*time.Millisecond))

	uids := map[string]string{}
	g.Eventually(func(g Gomega) {
		list := &cyclonev1alpha1.WorkflowRunList{}
		g.Expect(k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(runs), "no run lost, none added")
		for _, run := range list.Items {
			g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "run %s: %+v", run.Name, run.Status.Overall)
			g.Expect(run.Status.GC).NotTo(BeNil(), "run %s is cleaned up", run.Name)
			g.Expect(run.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded), "run %s is cleaned up", run.Name)
			uids[run.Name] = string(run.UID)
		}
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())

	created := pods.byRun()
	for name, uid := range uids {
		g.Expect(created[uid]).To(Equal(map[string]int{"checkout": 1, "test": 1, "lint": 1, "publish": 1, "gc": 1}),
			"run %s: one Pod per stage and one GC Pod", name)
	}
}
