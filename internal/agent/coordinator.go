package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec"
)

// Coordinator is the sidecar of a stage Pod. It waits until the workload
// containers have terminated, records the results they wrote as the
// stage's outputs in the WorkflowRun status, publishes the output
// artifacts of a successful workload, and tells the output resolvers
// whether to push.
type Coordinator struct {
	// Stage is the attempt the coordinator runs for.
	Stage Stage
	// Pods reads the stage Pod, on the cluster the Pod runs on.
	Pods kubernetes.Interface
	// Runs reads and writes the WorkflowRun, on the control cluster. It
	// must read from the API server, not a cache: the status write is
	// based on what it reads.
	Runs client.Client
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

// recordOutputs writes outputs into the stage's status. The write is an
// update carrying the resourceVersion it read, retried on conflict, and
// changes nothing but this stage's outputs, so it never undoes a write of
// the engine's. It leaves a stage alone whose current attempt is no longer
// this Pod's, or that has finished: a finished stage never changes again.
func (c *Coordinator) recordOutputs(ctx context.Context, outputs []cyclonev1alpha1.KeyValue) error {
	key := client.ObjectKey{Namespace: c.Stage.Namespace, Name: c.Stage.Run}
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		run := &cyclonev1alpha1.WorkflowRun{}
		if err := c.Runs.Get(ctx, key, run); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("workflowrun %s not found: it was deleted while stage %s ran", key, c.Stage.Name)
			}
			return fmt.Errorf("get workflowrun %s: %w", key, err)
		}
		ss := run.Status.Stages[c.Stage.Name]
		switch {
		case ss == nil:
			return fmt.Errorf("workflowrun %s: status.stages has no stage %q", key, c.Stage.Name)
		case ss.Pod == nil || ss.Pod.Name != c.Stage.Pod:
			ctrl.LoggerFrom(ctx).Info("Not recording outputs: the stage has moved on to another attempt")
			return nil
		case finished(ss.Status.Phase):
			ctrl.LoggerFrom(ctx).Info("Not recording outputs: the stage has already finished", "phase", ss.Status.Phase)
			return nil
		case slices.Equal(ss.Outputs, outputs):
			return nil
		}
		ss.Outputs = outputs
		if err := c.Runs.Status().Update(ctx, run); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return fmt.Errorf("workflowrun %s: write status.stages[%s].outputs: %w", key, c.Stage.Name, err)
		}
		return nil
	})
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

func finished(p cyclonev1alpha1.StatusPhase) bool {
	switch p {
	case cyclonev1alpha1.StatusSucceeded, cyclonev1alpha1.StatusFailed, cyclonev1alpha1.StatusCancelled:
		return true
	}
	return false
}
