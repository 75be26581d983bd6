package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// Coordinator is the sidecar of a stage Pod. It waits until the workload
// containers have terminated, leaves the results they wrote in its
// termination message, publishes the output artifacts of a successful
// workload, and tells the output resolvers whether to push.
//
// It talks to no API server: a stage Pod has no API token. The engine
// tells it that the workload has ended through an annotation of its Pod
// (convention.WorkloadExitAnnotation), which the kubelet writes into PodInfo,
// and reads the outputs from the Pod's status when the Pod ends, as
// Tekton reads step results. So stages on an execution cluster record
// outputs the same way as those on the control cluster.
type Coordinator struct {
	// Stage is the attempt the coordinator runs for.
	Stage Stage
	// Shared is the volume shared with the other containers
	// (convention.CoordinatorVolumePath in a Pod): "results/<container>/" and
	// "notify/".
	Shared string
	// Data is the run's data directory (convention.CoordinatorDataPath in a
	// Pod).
	Data string
	// PodInfo is the downward API directory of the stage Pod's
	// annotations (convention.CoordinatorPodInfoPath in a Pod).
	PodInfo string
	// TerminationLog is the file of the coordinator's termination message
	// (convention.TerminationLog in a Pod).
	TerminationLog string
	// Poll is how often the coordinator looks whether the workload has
	// ended; zero means every 200 ms.
	Poll time.Duration
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
// to see; artifacts are published only for a successful workload. When
// the coordinator itself fails, its termination message says why, and
// the stage fails with that message.
func (c *Coordinator) Run(ctx context.Context) error {
	err := c.run(ctx)
	var werr *WorkloadFailedError
	if err != nil && !errors.As(err, &werr) {
		msg := err.Error()
		if len(msg) > convention.MaxTerminationMessage {
			msg = msg[:convention.MaxTerminationMessage]
		}
		if werr := os.WriteFile(c.TerminationLog, []byte(msg), 0o644); werr != nil {
			return errors.Join(err, fmt.Errorf("write termination message: %w", werr))
		}
	}
	return err
}

func (c *Coordinator) run(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithValues("stage", c.Stage.Name, "pod", c.Stage.Pod)
	log.Info("Waiting for the workload containers", "containers", c.Stage.Workload)
	failed, err := c.waitWorkload(ctx)
	if err != nil {
		return err
	}
	outputs, err := ReadResults(filepath.Join(c.Shared, "results"))
	if err != nil {
		_ = c.notify(convention.NotifyFailed, err.Error())
		return err
	}
	if len(outputs) > 0 {
		log.Info("Recording outputs", "count", len(outputs))
		if err := c.recordOutputs(outputs); err != nil {
			_ = c.notify(convention.NotifyFailed, err.Error())
			return err
		}
	}
	if len(failed) > 0 {
		werr := &WorkloadFailedError{Containers: failed}
		log.Info("Workload failed; not publishing artifacts nor pushing outputs", "error", werr.Error())
		if err := c.notify(convention.NotifyFailed, werr.Error()); err != nil {
			return errors.Join(werr, err)
		}
		return werr
	}
	for _, a := range c.Stage.Artifacts {
		log.Info("Publishing artifact", "artifact", a)
		if err := PublishArtifact(c.Data, c.Stage.Pod, c.Stage.Name, a); err != nil {
			_ = c.notify(convention.NotifyFailed, err.Error())
			return err
		}
	}
	return c.notify(convention.NotifyOK, "")
}

// waitWorkload waits until the engine has said that every workload
// container has terminated, and returns the exit codes of those that
// failed.
func (c *Coordinator) waitWorkload(ctx context.Context) (map[string]int32, error) {
	poll := c.Poll
	if poll <= 0 {
		// Reading a small file five times a second costs nothing, and
		// every stage waits for this.
		poll = 200 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		codes, err := workloadExit(filepath.Join(c.PodInfo, convention.PodInfoAnnotations))
		if err != nil {
			return nil, err
		}
		if codes != nil {
			failed := map[string]int32{}
			for _, name := range c.Stage.Workload {
				code, ok := codes[name]
				if !ok {
					return nil, fmt.Errorf("the engine said the workload ended but gave no exit code for container %s", name)
				}
				if code != 0 {
					failed[name] = code
				}
			}
			return failed, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// workloadExit reads the exit codes of the workload containers from the
// downward API file of the Pod's annotations: one `key="value"` a line,
// the value quoted as Go quotes strings. It returns nil while the engine
// has not annotated the Pod, or while the kubelet has not yet written the
// file.
func workloadExit(file string) (map[string]int32, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the stage pod's annotations: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, quoted, ok := strings.Cut(line, "=")
		if !ok || k != convention.WorkloadExitAnnotation {
			continue
		}
		value, err := strconv.Unquote(quoted)
		if err != nil {
			return nil, fmt.Errorf("annotation %s in %s: %w", k, file, err)
		}
		codes := map[string]int32{}
		if err := json.Unmarshal([]byte(value), &codes); err != nil {
			return nil, fmt.Errorf("annotation %s in %s: %w", k, file, err)
		}
		return codes, nil
	}
	return nil, nil
}

// recordOutputs leaves outputs in the coordinator's termination message,
// for the engine to copy into the stage's status when the Pod ends. The
// message belongs to this Pod, so it can never land on another attempt of
// the stage. The kubelet keeps at most convention.MaxTerminationMessage bytes
// of it: outputs that do not fit fail the stage rather than lose some.
func (c *Coordinator) recordOutputs(outputs []cyclonev1alpha1.KeyValue) error {
	value, err := json.Marshal(outputs)
	if err != nil {
		return err
	}
	if len(value) > convention.MaxTerminationMessage {
		return fmt.Errorf("the stage's %d outputs take %d bytes, more than the %d bytes of a termination message that carries them; write fewer or shorter results",
			len(outputs), len(value), convention.MaxTerminationMessage)
	}
	if err := os.WriteFile(c.TerminationLog, value, 0o644); err != nil {
		return fmt.Errorf("record outputs: %w", err)
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
