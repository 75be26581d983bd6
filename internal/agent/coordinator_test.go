package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/fsutil"
)

var bg = context.Background()

// stageFixture is attempt 1 of stage "build" of run "run1", with
// temporary directories and files standing in for the stage Pod's shared
// volume, the run's data on the PVC, the downward API volume of the Pod's
// annotations and the coordinator's termination message.
type stageFixture struct {
	shared, data, podInfo, termination string
	coordinator                        *Coordinator
}

func newStage(t *testing.T) *stageFixture {
	t.Helper()
	f := &stageFixture{shared: t.TempDir(), data: t.TempDir(), podInfo: t.TempDir()}
	f.termination = filepath.Join(t.TempDir(), "termination-log")
	f.coordinator = &Coordinator{
		Stage:  Stage{Run: "run1", Namespace: "cyclone-a", Name: "build", Pod: "run1-build-1", Workload: []string{"main"}, Artifacts: []string{"bin"}},
		Shared: f.shared, Data: f.data, PodInfo: f.podInfo, TerminationLog: f.termination,
		Poll: 10 * time.Millisecond,
	}
	return f
}

// workloadEnded writes what the kubelet projects once the engine has
// annotated the Pod with how the workload ended: every annotation as
// key="value", the value quoted as Go quotes strings.
func (f *stageFixture) workloadEnded(t *testing.T, codes string) {
	t.Helper()
	content := fmt.Sprintf("%s=%q\n%s=%q", "gyre.dev/run", "cyclone-a/run1", convention.WorkloadExitAnnotation, codes)
	write(t, f.podInfo, convention.PodInfoAnnotations, content)
}

// write creates a file under dir with its parent directories.
func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	if err := fsutil.WriteFile(filepath.Join(dir, rel), []byte(content)); err != nil {
		t.Fatal(err)
	}
}

// outputs decodes what the coordinator left in its termination message
// for the engine.
func (f *stageFixture) outputs(g Gomega) []cyclonev1alpha1.KeyValue {
	b, err := os.ReadFile(f.termination)
	g.Expect(err).NotTo(HaveOccurred(), "the coordinator wrote its termination message")
	var out []cyclonev1alpha1.KeyValue
	g.Expect(json.Unmarshal(b, &out)).To(Succeed())
	return out
}

func TestCoordinator_succeededWorkload(t *testing.T) {
	g := NewWithT(t)
	f := newStage(t)
	// What the containers left: the workload's results, the Git input
	// resolver's commit, and the artifact in the attempt's staging
	// directory.
	write(t, f.shared, "results/main/__result__", "overall:Passed\nimage: repo/app:v1 \nnot a result\n\ncoverage:81%\n")
	write(t, f.shared, "results/i-src/__result__", "LastCommitID:0123abcd\n")
	write(t, f.data, "staging/run1-build-1/bin/app", "binary")
	// An earlier attempt's artifact is replaced, not merged into.
	write(t, f.data, "artifacts/build/bin/stale", "old")
	f.workloadEnded(t, `{"main":0}`)

	g.Expect(f.coordinator.Run(bg)).To(Succeed())

	g.Expect(f.outputs(g)).To(Equal([]cyclonev1alpha1.KeyValue{
		{Key: "LastCommitID", Value: "0123abcd"},
		{Key: "overall", Value: "Passed"},
		{Key: "image", Value: " repo/app:v1"},
		{Key: "coverage", Value: "81%"},
	}), "result files in path order, each line split at its first colon")

	g.Expect(os.ReadFile(filepath.Join(f.data, "artifacts/build/bin/app"))).To(Equal([]byte("binary")))
	g.Expect(filepath.Join(f.data, "artifacts/build/bin/stale")).NotTo(BeAnExistingFile())
	g.Expect(filepath.Join(f.shared, "notify", convention.NotifyOK)).To(BeAnExistingFile())
}

func TestCoordinator_failedWorkload(t *testing.T) {
	g := NewWithT(t)
	f := newStage(t)
	write(t, f.shared, "results/main/__result__", "tests:12 failed\n")
	write(t, f.data, "staging/run1-build-1/bin/app", "half-built")
	f.workloadEnded(t, `{"main":3}`)

	err := f.coordinator.Run(bg)
	var failed *WorkloadFailedError
	g.Expect(err).To(BeAssignableToTypeOf(failed))
	g.Expect(err).To(MatchError("workload failed: main exited with code 3"))

	g.Expect(f.outputs(g)).To(Equal([]cyclonev1alpha1.KeyValue{{Key: "tests", Value: "12 failed"}}),
		"a failed stage's results are what its user wants to see")
	g.Expect(filepath.Join(f.data, "artifacts/build/bin")).NotTo(BeAnExistingFile(), "later stages never see a failed attempt's artifacts")
	g.Expect(filepath.Join(f.shared, "notify", convention.NotifyOK)).NotTo(BeAnExistingFile())
	g.Expect(os.ReadFile(filepath.Join(f.shared, "notify", convention.NotifyFailed))).To(ContainSubstring("main exited with code 3"))
}

func TestCoordinator_waitsForTheEngineToSayTheWorkloadEnded(t *testing.T) {
	g := NewWithT(t)
	f := newStage(t)
	f.coordinator.Stage.Artifacts = nil
	// The kubelet has written the annotations, but not yet the engine's.
	write(t, f.podInfo, convention.PodInfoAnnotations, `gyre.dev/run="cyclone-a/run1"`)
	done := make(chan error, 1)
	go func() { done <- f.coordinator.Run(bg) }()
	g.Consistently(done).WithTimeout(200 * time.Millisecond).ShouldNot(Receive())
	g.Expect(filepath.Join(f.shared, "notify")).NotTo(BeAnExistingFile(), "output resolvers wait")

	f.workloadEnded(t, `{"main":0}`)
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
	g.Expect(filepath.Join(f.shared, "notify", convention.NotifyOK)).To(BeAnExistingFile())
}

func TestCoordinator_outputsThatDoNotFitFailTheStage(t *testing.T) {
	g := NewWithT(t)
	f := newStage(t)
	f.coordinator.Stage.Artifacts = nil
	write(t, f.shared, "results/main/__result__", "log:"+strings.Repeat("x", convention.MaxTerminationMessage)+"\n")
	f.workloadEnded(t, `{"main":0}`)

	err := f.coordinator.Run(bg)
	g.Expect(err).To(MatchError(ContainSubstring("more than the 4096 bytes of a termination message that carries them")))
	msg, readErr := os.ReadFile(f.termination)
	g.Expect(readErr).NotTo(HaveOccurred())
	g.Expect(string(msg)).To(Equal(err.Error()), "the stage fails with why, never with outputs cut short")
	g.Expect(filepath.Join(f.shared, "notify", convention.NotifyOK)).NotTo(BeAnExistingFile())
}

func TestStageFromEnv(t *testing.T) {
	g := NewWithT(t)
	vars := map[string]string{
		convention.EnvRunName: "run1", convention.EnvRunNamespace: "cyclone-a", convention.EnvStageName: "build",
		convention.EnvPodName:            "run1-build-1",
		convention.EnvWorkloadContainers: "main, side", convention.EnvOutputArtifacts: "",
	}
	s, err := StageFromEnv(func(k string) string { return vars[k] })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Workload).To(Equal([]string{"main", "side"}))
	g.Expect(s.Artifacts).To(BeEmpty())

	delete(vars, convention.EnvPodName)
	_, err = StageFromEnv(func(k string) string { return vars[k] })
	g.Expect(err).To(MatchError(ContainSubstring("environment variable POD_NAME is not set")))
}
