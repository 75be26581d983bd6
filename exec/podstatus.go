package exec

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// Reasons the engine records on stages and runs.
const (
	ReasonPodCreating       = "PodCreating"
	ReasonPodDeleted        = "PodDeleted"
	ReasonEvicted           = "Evicted"
	ReasonOOMKilled         = "OOMKilled"
	ReasonError             = "Error"
	ReasonInitFailed        = "InitContainerFailed"
	ReasonImagePull         = "ImagePullFailed"
	ReasonTimeout           = "Timeout"
	ReasonRetrying          = "Retrying"
	ReasonUpstreamFailed    = "UpstreamFailed"
	ReasonRunFailed         = "RunFailed"
	ReasonInvalidStage      = "InvalidStage"
	ReasonInvalidWorkflow   = "InvalidWorkflow"
	ReasonClusterNotFound   = "ExecutionClusterNotFound"
	ReasonPodNameConflict   = "PodNameConflict"
	ReasonPodRefused        = "PodRefused"
	ReasonStageFailed       = "StageFailed"
	ReasonCompleted         = "Completed"
	ReasonWaitingForCluster = "WaitingForCluster"
)

// imagePullReasons are container waiting reasons that mean the image
// cannot be pulled or the container cannot be created as specified; they
// fail the attempt once the grace period is over.
var imagePullReasons = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
}

// podState is what a stage Pod says about its attempt.
type podState struct {
	Phase   cyclonev1alpha1.StatusPhase
	Reason  string
	Message string
	// Deadline, when set, is when a Pending state turns into a failure
	// (the end of the image pull grace period).
	Deadline time.Time
	// Started and Ended are when the Pod's first container started and
	// its last one ended, as the kubelet reports them, or zero when it
	// does not say: a status written after a hold-back shows when a
	// stage ran, not when the engine wrote it.
	Started, Ended time.Time
}

// stateOfPod maps a stage Pod to the state of its attempt. The attempt
// started at start; image pull errors fail it once grace has passed since
// then. A Pod that is being deleted before it finished fails the attempt:
// the engine deletes Pods only of attempts it has already finished.
func stateOfPod(pod *corev1.Pod, start, now time.Time, grace time.Duration) podState {
	state := podStateOf(pod, start, now, grace)
	state.Started, state.Ended = containerTimes(pod)
	if !convention.Finished(state.Phase) {
		state.Ended = time.Time{}
	}
	return state
}

// podStateOf is stateOfPod without the times.
func podStateOf(pod *corev1.Pod, start, now time.Time, grace time.Duration) podState {
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		return podState{Phase: cyclonev1alpha1.StatusSucceeded, Reason: ReasonCompleted}
	case corev1.PodFailed:
		reason, msg := podFailure(pod)
		return podState{Phase: cyclonev1alpha1.StatusFailed, Reason: reason, Message: msg}
	}
	if pod.DeletionTimestamp != nil {
		return podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonPodDeleted,
			Message: fmt.Sprintf("pod %s was deleted before the stage finished", pod.Name)}
	}
	if pod.Status.Phase == corev1.PodRunning {
		// The coordinator exits non-zero once the workload has failed.
		// Output resolvers from Cyclone's images wait for a success
		// that will never come, keeping the Pod running: the attempt
		// has failed all the same.
		if coordinatorFailed(pod) {
			reason, msg := podFailure(pod)
			return podState{Phase: cyclonev1alpha1.StatusFailed, Reason: reason, Message: msg}
		}
		return podState{Phase: cyclonev1alpha1.StatusRunning}
	}
	// Pending (or Unknown): say what it waits for.
	for _, cs := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		w := cs.State.Waiting
		if w == nil || !imagePullReasons[w.Reason] {
			continue
		}
		msg := fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
		deadline := start.Add(grace)
		if !now.Before(deadline) {
			return podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonImagePull,
				Message: msg + fmt.Sprintf(" (for longer than %s)", grace)}
		}
		return podState{Phase: cyclonev1alpha1.StatusPending, Reason: w.Reason, Message: msg, Deadline: deadline}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return podState{Phase: cyclonev1alpha1.StatusPending, Reason: c.Reason, Message: c.Message}
		}
	}
	return podState{Phase: cyclonev1alpha1.StatusPending, Reason: ReasonPodCreating}
}

// containerTimes returns when the first of pod's containers, init
// containers included, started, and when the last that terminated ended;
// zero for what no container status says.
func containerTimes(pod *corev1.Pod) (started, ended time.Time) {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			var from time.Time
			switch {
			case cs.State.Running != nil:
				from = cs.State.Running.StartedAt.Time
			case cs.State.Terminated != nil:
				from = cs.State.Terminated.StartedAt.Time
				if to := cs.State.Terminated.FinishedAt.Time; to.After(ended) {
					ended = to
				}
			}
			if !from.IsZero() && (started.IsZero() || from.Before(started)) {
				started = from
			}
		}
	}
	return started, ended
}

// podFailure says why a Failed Pod failed, most specific cause first.
func podFailure(pod *corev1.Pod) (reason, message string) {
	if pod.Status.Reason == "Evicted" {
		return ReasonEvicted, "pod was evicted: " + pod.Status.Message
	}
	for _, cs := range pod.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return ReasonInitFailed, fmt.Sprintf("init container %s exited with code %d%s", cs.Name, t.ExitCode, detail(t))
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.Reason == "OOMKilled" {
			return ReasonOOMKilled, fmt.Sprintf("container %s ran out of memory and was killed (exit code %d)", cs.Name, t.ExitCode)
		}
	}
	// The workload's own failure first: the coordinator then fails too,
	// and the kubelet lists containers by name, not in the Pod's order.
	workload := workloadContainers(pod)
	for _, own := range []bool{true, false} {
		for _, cs := range pod.Status.ContainerStatuses {
			if slices.Contains(workload, cs.Name) != own {
				continue
			}
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				return ReasonError, fmt.Sprintf("container %s exited with code %d%s", cs.Name, t.ExitCode, detail(t))
			}
		}
	}
	msg := "pod failed"
	if pod.Status.Reason != "" || pod.Status.Message != "" {
		msg = strings.TrimSpace("pod failed: " + pod.Status.Reason + " " + pod.Status.Message)
	}
	return ReasonError, msg
}

func detail(t *corev1.ContainerStateTerminated) string {
	if t.Message != "" {
		return ": " + t.Message
	}
	return ""
}
