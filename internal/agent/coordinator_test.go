package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/testcluster"
)

var bg = context.Background()

// stageFixture is attempt 1 of stage "build" of run "run1", in a Pod that
// kwok drives, with temporary directories standing in for the Pod's shared
// volume and the run's data on the PVC.
type stageFixture struct {
	ns, pod      string
	shared, data string
	coordinator  *Coordinator
}

// newStage creates the stage Pod with the kwok annotations given, which
// pick how its containers end.
func newStage(t *testing.T, podAnnotations map[string]string) *stageFixture {
	t.Helper()
	g := NewWithT(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cyclone-agent-"}}
	g.Expect(k8s.Create(bg, ns)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(bg, ns) })
	f := &stageFixture{ns: ns.Name, pod: "run1-build-1", shared: t.TempDir(), data: t.TempDir()}
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
	f.coordinator = &Coordinator{
		Stage: Stage{Run: "run1", Namespace: f.ns, Name: "build", Pod: f.pod, PodNamespace: f.ns,
			Workload: []string{"main"}, Artifacts: []string{"bin"}},
		Pods: pods, Shared: f.shared, Data: f.data,
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

// outputs decodes what the coordinator left on the stage Pod for the
// engine.
func (f *stageFixture) outputs(g Gomega) []cyclonev1alpha1.KeyValue {
	pod := &corev1.Pod{}
	g.Expect(k8s.Get(bg, client.ObjectKey{Namespace: f.ns, Name: f.pod}, pod)).To(Succeed())
	value, ok := pod.Annotations[exec.OutputsAnnotation]
	g.Expect(ok).To(BeTrue(), "the stage Pod carries %s", exec.OutputsAnnotation)
	var out []cyclonev1alpha1.KeyValue
	g.Expect(json.Unmarshal([]byte(value), &out)).To(Succeed())
	return out
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

	g.Expect(f.coordinator.Run(bg)).To(Succeed())

	g.Expect(f.outputs(g)).To(Equal([]cyclonev1alpha1.KeyValue{
		{Key: "LastCommitID", Value: "0123abcd"},
		{Key: "overall", Value: "Passed"},
		{Key: "image", Value: " repo/app:v1"},
		{Key: "coverage", Value: "81%"},
	}), "result files in path order, each line split at its first colon")

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

	err := f.coordinator.Run(bg)
	var failed *WorkloadFailedError
	g.Expect(err).To(BeAssignableToTypeOf(failed))
	g.Expect(err).To(MatchError("workload failed: main exited with code 3"))

	g.Expect(f.outputs(g)).To(Equal([]cyclonev1alpha1.KeyValue{{Key: "tests", Value: "12 failed"}}),
		"a failed stage's results are what its user wants to see")
	g.Expect(filepath.Join(f.data, "artifacts/build/bin")).NotTo(BeAnExistingFile(), "later stages never see a failed attempt's artifacts")
	g.Expect(filepath.Join(f.shared, "notify", exec.NotifyOK)).NotTo(BeAnExistingFile())
	g.Expect(os.ReadFile(filepath.Join(f.shared, "notify", exec.NotifyFailed))).To(ContainSubstring("main exited with code 3"))
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
