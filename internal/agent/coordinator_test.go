package agent

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/testcluster"
)

var bg = context.Background()

// stageFixture is a run whose stage "build" runs its current attempt in
// a Pod that kwok drives, with temporary directories standing in for the
// Pod's shared volume and the run's data on the PVC.
type stageFixture struct {
	ns, pod        string
	shared, data   string
	run            *cyclonev1alpha1.WorkflowRun
	coordinatorFor func(runs client.Client) *Coordinator
}

// newStage creates the run, records attempt 1 of stage "build" on Pod
// "run1-build-1" as the engine does, and creates that Pod with the kwok
// annotations given, which pick how its containers end.
func newStage(t *testing.T, podAnnotations map[string]string) *stageFixture {
	t.Helper()
	g := NewWithT(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cyclone-agent-"}}
	g.Expect(k8s.Create(bg, ns)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(bg, ns) })
	f := &stageFixture{ns: ns.Name, pod: "run1-build-1", shared: t.TempDir(), data: t.TempDir()}

	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Name: "run1", Namespace: f.ns},
		Spec:       cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: "wf"}},
	}
	g.Expect(k8s.Create(bg, run)).To(Succeed())
	start := metav1.Now()
	run.Status = cyclonev1alpha1.WorkflowRunStatus{
		Overall: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusRunning},
		Stages: map[string]*cyclonev1alpha1.StageStatus{
			"build": {
				Pod:     &cyclonev1alpha1.PodInfo{Name: f.pod, Namespace: f.ns},
				Attempt: 1,
				Status:  cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusRunning, Reason: "PodCreating", StartTime: &start},
			},
			"deploy": {Depends: []string{"build"}, Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusPending}},
		},
	}
	g.Expect(k8s.Status().Update(bg, run)).To(Succeed())
	f.run = run

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: f.pod, Namespace: f.ns, Annotations: podAnnotations},
		Spec: corev1.PodSpec{
			// kwok runs Pods only on its nodes; no scheduler runs here.
			NodeName:      "kwok-node-0",
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{
				{Name: "main", Image: "golang:1"},
				{Name: "csc-co", Image: "ghcr.io/gyreops/gyre:latest"},
			},
		},
	}
	g.Expect(k8s.Create(bg, pod)).To(Succeed())
	f.coordinatorFor = func(runs client.Client) *Coordinator {
		return &Coordinator{
			Stage: Stage{Run: "run1", Namespace: f.ns, Name: "build", Pod: f.pod, PodNamespace: f.ns,
				Workload: []string{"main"}, Artifacts: []string{"bin"}},
			Pods: pods, Runs: runs, Shared: f.shared, Data: f.data,
		}
	}
	return f
}

// write creates a file under dir with its parent directories.
func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *stageFixture) stage(g Gomega) *cyclonev1alpha1.StageStatus {
	run := &cyclonev1alpha1.WorkflowRun{}
	g.Expect(k8s.Get(bg, client.ObjectKey{Namespace: f.ns, Name: "run1"}, run)).To(Succeed())
	return run.Status.Stages["build"]
}

func TestCoordinator_succeededWorkload(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	f := newStage(t, map[string]string{testcluster.AnnotationResult: "succeed"})
	// What the containers left: the workload's results, the Git input
	// resolver's commit, and the artifact in the attempt's staging
	// directory.
	write(t, f.shared, "results/main/__result__", "overall:Passed\nimage: repo/app:v1 \nnot a result\n\ncoverage:81%\n")
	write(t, f.shared, "results/i-src/__result__", "LastCommitID:0123abcd\n")
	write(t, f.data, "staging/run1-build-1/bin/app", "binary")
	// An earlier attempt's artifact is replaced, not merged into.
	write(t, f.data, "artifacts/build/bin/stale", "old")

	g.Expect(f.coordinatorFor(k8s).Run(bg)).To(Succeed())

	ss := f.stage(g)
	g.Expect(ss.Outputs).To(Equal([]cyclonev1alpha1.KeyValue{
		{Key: "LastCommitID", Value: "0123abcd"},
		{Key: "overall", Value: "Passed"},
		{Key: "image", Value: " repo/app:v1"},
		{Key: "coverage", Value: "81%"},
	}), "result files in path order, each line split at its first colon")
	g.Expect(ss.Status.Phase).To(Equal(cyclonev1alpha1.StatusRunning), "the engine's fields are untouched")
	g.Expect(ss.Status.Reason).To(Equal("PodCreating"))

	g.Expect(os.ReadFile(filepath.Join(f.data, "artifacts/build/bin/app"))).To(Equal([]byte("binary")))
	g.Expect(filepath.Join(f.data, "artifacts/build/bin/stale")).NotTo(BeAnExistingFile())
	g.Expect(filepath.Join(f.shared, "notify", exec.NotifyOK)).To(BeAnExistingFile())
}

func TestCoordinator_failedWorkload(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	f := newStage(t, map[string]string{testcluster.AnnotationResult: "fail", testcluster.AnnotationExitCode: "3"})
	write(t, f.shared, "results/main/__result__", "tests:12 failed\n")
	write(t, f.data, "staging/run1-build-1/bin/app", "half-built")

	err := f.coordinatorFor(k8s).Run(bg)
	var failed *WorkloadFailedError
	g.Expect(err).To(BeAssignableToTypeOf(failed))
	g.Expect(err).To(MatchError("workload failed: main exited with code 3"))

	g.Expect(f.stage(g).Outputs).To(Equal([]cyclonev1alpha1.KeyValue{{Key: "tests", Value: "12 failed"}}),
		"a failed stage's results are what its user wants to see")
	g.Expect(filepath.Join(f.data, "artifacts/build/bin")).NotTo(BeAnExistingFile(), "later stages never see a failed attempt's artifacts")
	g.Expect(filepath.Join(f.shared, "notify", exec.NotifyOK)).NotTo(BeAnExistingFile())
	g.Expect(os.ReadFile(filepath.Join(f.shared, "notify", exec.NotifyFailed))).To(ContainSubstring("main exited with code 3"))
}

func TestCoordinator_supersededAttempt(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	f := newStage(t, map[string]string{testcluster.AnnotationResult: "succeed"})
	write(t, f.shared, "results/main/__result__", "overall:Passed\n")
	write(t, f.data, "staging/run1-build-1/bin/app", "binary")
	// The engine has since timed the attempt out and started another.
	f.run.Status.Stages["build"].Pod.Name = "run1-build-2"
	f.run.Status.Stages["build"].Attempt = 2
	g.Expect(k8s.Status().Update(bg, f.run)).To(Succeed())

	g.Expect(f.coordinatorFor(k8s).Run(bg)).To(Succeed())
	g.Expect(f.stage(g).Outputs).To(BeEmpty(), "outputs of an old attempt never land on the new one")
}

func TestCoordinator_concurrentEngineWrite(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	f := newStage(t, map[string]string{testcluster.AnnotationResult: "succeed"})
	write(t, f.shared, "results/main/__result__", "overall:Passed\n")
	write(t, f.data, "staging/run1-build-1/bin/app", "binary")

	// The engine writes the run between the coordinator's read and its
	// write: the coordinator's write must fail on the resourceVersion and
	// be redone on top of the engine's, not overwrite it.
	var engineWrites atomic.Int32
	runs := interceptor.NewClient(k8s, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if engineWrites.Add(1) == 1 {
				run := &cyclonev1alpha1.WorkflowRun{}
				g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), run)).To(Succeed())
				run.Status.Stages["build"].Status.Reason = ""
				run.Status.Stages["deploy"].Status.Message = "written by the engine"
				g.Expect(c.Status().Update(ctx, run)).To(Succeed())
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	g.Expect(f.coordinatorFor(runs).Run(bg)).To(Succeed())

	run := &cyclonev1alpha1.WorkflowRun{}
	g.Expect(k8s.Get(bg, client.ObjectKey{Namespace: f.ns, Name: "run1"}, run)).To(Succeed())
	g.Expect(engineWrites.Load()).To(BeNumerically(">=", 2), "the first write conflicted and was redone")
	g.Expect(run.Status.Stages["build"].Outputs).To(Equal([]cyclonev1alpha1.KeyValue{{Key: "overall", Value: "Passed"}}))
	g.Expect(run.Status.Stages["build"].Status.Reason).To(BeEmpty())
	g.Expect(run.Status.Stages["deploy"].Status.Message).To(Equal("written by the engine"))
}

func TestCoordinator_finishedStage(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	f := newStage(t, map[string]string{testcluster.AnnotationResult: "succeed"})
	write(t, f.shared, "results/main/__result__", "overall:Passed\n")
	write(t, f.data, "staging/run1-build-1/bin/app", "binary")
	f.run.Status.Stages["build"].Status.Phase = cyclonev1alpha1.StatusFailed // e.g. timed out
	g.Expect(k8s.Status().Update(bg, f.run)).To(Succeed())

	g.Expect(f.coordinatorFor(k8s).Run(bg)).To(Succeed())
	g.Expect(f.stage(g).Outputs).To(BeEmpty(), "a finished stage never changes again")
}

func TestStageFromEnv(t *testing.T) {
	g := NewWithT(t)
	vars := map[string]string{
		exec.EnvRunName: "run1", exec.EnvRunNamespace: "cyclone-a", exec.EnvStageName: "build",
		exec.EnvPodName: "run1-build-1", exec.EnvPodNamespace: "cyclone-a-worker",
		exec.EnvWorkloadContainers: "main, side", exec.EnvOutputArtifacts: "",
	}
	s, err := StageFromEnv(func(k string) string { return vars[k] })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Workload).To(Equal([]string{"main", "side"}))
	g.Expect(s.Artifacts).To(BeEmpty())

	delete(vars, exec.EnvPodName)
	_, err = StageFromEnv(func(k string) string { return vars[k] })
	g.Expect(err).To(MatchError(ContainSubstring("environment variable POD_NAME is not set")))
}
