package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec"
)

// Coordinator is the sidecar of a stage Pod. It waits until the workload
// containers have terminated, records the results they wrote on its own
// Pod (exec.OutputsAnnotation), publishes the output artifacts of a
// successful workload, and tells the output resolvers whether to push.
//
// The engine copies the outputs into the WorkflowRun's status when it sees
// the Pod end, as Cyclone's controller does: so the coordinator needs no
// access to the control cluster, and stages on an execution cluster
// record outputs the same way as those on the control cluster.
type Coordinator struct {
	// Stage is the attempt the coordinator runs for.
	Stage Stage
	// Pods reads and annotates the stage Pod, on the cluster it runs on.
	Pods kubernetes.Interface
	// Shared is the volume shared with the other containers
	// (exec.CoordinatorVolumePath in a Pod): "results/<container>/" and
	// "notify/".
	Shared string
	// Data is the run's data directory (exec.CoordinatorDataPath in a
	// Pod).
	Data string
}

// WorkloadFailedError says the workload of the stage failed; the
// coordinator exits non-zero with it, as Cyclone's does.
type WorkloadFailedError struct {
	// Containers maps each failed workload container to its exit code.
	Containers map[string]int32
}

func (e *WorkloadFailedError) Error() string {
	names := make([]string, 0, len(e.Containers))
	for n := range e.Containers {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s exited with code %d", n, e.Containers[n])
	}
	return "workload failed: " + strings.Join(parts, ", ")
}

// Run does the coordinator's work once and returns when the output
// resolvers may go on. Results are recorded whether or not the workload
// succeeded, since a failed test stage's results are what its user wants
// to see; artifacts are published only for a successful workload.
func (c *Coordinator) Run(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithValues("stage", c.Stage.Name, "pod", c.Stage.Pod)
	log.Info("Waiting for the workload containers", "containers", c.Stage.Workload)
	failed, err := c.waitWorkload(ctx)
	if err != nil {
		return err
	}
	outputs, err := ReadResults(filepath.Join(c.Shared, "results"))
	if err != nil {
		_ = c.notify(exec.NotifyFailed, err.Error())
		return err
	}
	if len(outputs) > 0 {
		log.Info("Recording outputs", "count", len(outputs))
		if err := c.recordOutputs(ctx, outputs); err != nil {
			_ = c.notify(exec.NotifyFailed, err.Error())
			return err
		}
	}
	if len(failed) > 0 {
		werr := &WorkloadFailedError{Containers: failed}
		log.Info("Workload failed; not publishing artifacts nor pushing outputs", "error", werr.Error())
		if err := c.notify(exec.NotifyFailed, werr.Error()); err != nil {
			return errors.Join(werr, err)
		}
		return werr
	}
	for _, a := range c.Stage.Artifacts {
		log.Info("Publishing artifact", "artifact", a)
		if err := PublishArtifact(c.Data, c.Stage.Pod, c.Stage.Name, a); err != nil {
			_ = c.notify(exec.NotifyFailed, err.Error())
			return err
		}
	}
	return c.notify(exec.NotifyOK, "")
}

// waitWorkload watches the stage Pod until every workload container has
// terminated and returns the exit codes of those that failed.
func (c *Coordinator) waitWorkload(ctx context.Context) (map[string]int32, error) {
	pods := c.Pods.CoreV1().Pods(c.Stage.PodNamespace)
	for {
		pod, err := pods.Get(ctx, c.Stage.Pod, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get stage pod %s/%s: %w", c.Stage.PodNamespace, c.Stage.Pod, err)
		}
		if failed, done := workloadDone(pod, c.Stage.Workload); done {
			return failed, nil
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", c.Stage.Pod).String(),
			ResourceVersion: pod.ResourceVersion,
		})
		if err != nil {
			return nil, fmt.Errorf("watch stage pod %s/%s: %w", c.Stage.PodNamespace, c.Stage.Pod, err)
		}
		failed, done, err := untilDone(ctx, w, c.Stage.Workload)
		w.Stop()
		if err != nil || done {
			return failed, err
		}
		// The watch ended (expired or closed by the server): look again.
	}
}

// untilDone reads a Pod watch until the workload is done, the watch ends,
// or ctx is cancelled.
func untilDone(ctx context.Context, w watch.Interface, workload []string) (map[string]int32, bool, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, false, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return nil, false, errors.New("the stage pod was deleted while its workload ran")
			case watch.Error:
				return nil, false, nil
			}
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if failed, done := workloadDone(pod, workload); done {
				return failed, true, nil
			}
		}
	}
}

// workloadDone reports whether every workload container of pod has
// terminated, and the exit codes of those that failed.
func workloadDone(pod *corev1.Pod, workload []string) (map[string]int32, bool) {
	failed := map[string]int32{}
	for _, name := range workload {
		var state *corev1.ContainerStateTerminated
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == name {
				state = cs.State.Terminated
			}
		}
		if state == nil {
			return nil, false
		}
		if state.ExitCode != 0 {
			failed[name] = state.ExitCode
		}
	}
	return failed, true
}

// recordOutputs annotates the stage Pod with outputs, for the engine to
// copy into the stage's status when the Pod ends. The annotation belongs
// to this Pod, so it can never land on another attempt of the stage.
func (c *Coordinator) recordOutputs(ctx context.Context, outputs []cyclonev1alpha1.KeyValue) error {
	value, err := json.Marshal(outputs)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{exec.OutputsAnnotation: string(value)}}})
	if err != nil {
		return err
	}
	if _, err := c.Pods.CoreV1().Pods(c.Stage.PodNamespace).Patch(ctx, c.Stage.Pod, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("record outputs on stage pod %s/%s: %w", c.Stage.PodNamespace, c.Stage.Pod, err)
	}
	return nil
}

// notify creates the notify file, "ok" or "failed" with the reason.
func (c *Coordinator) notify(file, reason string) error {
	dir := filepath.Join(c.Shared, "notify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("notify output resolvers: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(reason), 0o644); err != nil {
		return fmt.Errorf("notify output resolvers: %w", err)
	}
	return nil
}
