package exec

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// observe folds the run's Pods into the stage statuses and returns the
// stages whose recorded Pod is missing and must be created.
func (r *Engine) observe(s *scope, st *cyclonev1alpha1.WorkflowRunStatus, pods map[string]*corev1.Pod) (missing []string) {
	for _, name := range sortedStages(st.Stages) {
		ss := st.Stages[name]
		if !active(ss) {
			continue
		}
		start := s.now
		if ss.Status.StartTime != nil {
			start = ss.Status.StartTime.Time
		}
		pod := pods[ss.Pod.Name]
		var state podState
		switch {
		case pod != nil:
			state = stateOfPod(pod, start, s.now, r.cfg.ImagePullGracePeriod)
			copyOutputs(ss, pod)
		case ss.Status.Phase == cyclonev1alpha1.StatusRunning:
			state = podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonPodDeleted,
				Message: fmt.Sprintf("pod %s disappeared while the stage was running", ss.Pod.Name)}
		default:
			missing = append(missing, name)
			state = podState{Phase: cyclonev1alpha1.StatusPending, Reason: ss.Status.Reason, Message: ss.Status.Message}
		}
		item := stageItem(s.workflow, name)
		if timeout, _ := convention.ParseTimeout(item.Timeout); timeout > 0 && !convention.Finished(state.Phase) {
			if deadline := start.Add(timeout); !s.now.Before(deadline) {
				state = podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonTimeout,
					Message: fmt.Sprintf("attempt %d exceeded the stage timeout of %s", ss.Attempt, item.Timeout)}
			} else {
				s.wakeAt(deadline)
			}
		}
		if !state.Deadline.IsZero() {
			s.wakeAt(state.Deadline)
		}
		if state.Phase == cyclonev1alpha1.StatusFailed {
			r.forgetRunning(s.run, ss.Pod.Name)
			r.failAttempt(s, ss, item, state)
			continue
		}
		if state.Phase == cyclonev1alpha1.StatusRunning && ss.Status.Phase != cyclonev1alpha1.StatusRunning {
			if report := r.seenRunning(s.run, pod.Name, s.now).Add(r.reportDelay()); s.now.Before(report) {
				s.wakeAt(report)
				continue
			}
		}
		r.forgetRunning(s.run, ss.Pod.Name)
		transition(&ss.Status, state.Phase, state.Reason, state.Message, ranAt(ss, state, s.now))
	}
	return missing
}

// ranAt takes the attempt's start time from its Pod's containers once
// they have started, and returns when the attempt reached state: when its
// last container ended for an end, when its first started for Running,
// and now for anything the Pod does not date. Times come from the
// kubelet, not from the reconcile that writes them: a write held back
// (see holdBack) or queued behind others still shows when the stage ran.
// None is later than now, so a node clock ahead of the engine's cannot
// date a stage in the future, nor is an end earlier than its start.
func ranAt(ss *cyclonev1alpha1.StageStatus, state podState, now time.Time) time.Time {
	if convention.Finished(ss.Status.Phase) {
		return now // written once, never changed: see transition
	}
	// Once Running is written, so is the start it was written with.
	if started := state.Started; !started.IsZero() && ss.Status.Phase != cyclonev1alpha1.StatusRunning &&
		(state.Phase == cyclonev1alpha1.StatusRunning || convention.Finished(state.Phase)) {
		t := metav1.NewTime(minTime(started, now))
		ss.Status.StartTime = &t
	}
	at := now
	switch {
	case convention.Finished(state.Phase) && !state.Ended.IsZero():
		at = minTime(state.Ended, now)
	case state.Phase == cyclonev1alpha1.StatusRunning && !state.Started.IsZero():
		at = minTime(state.Started, now)
	}
	if start := ss.Status.StartTime; start != nil && at.Before(start.Time) {
		at = start.Time
	}
	return at
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// seenRunning returns when the engine first saw the run's Pod named pod
// running. The Running report is held back from that moment, not from the
// attempt's start: under load a Pod may wait seconds for a node and then
// finish at once, and it should still cost one status write, not two. The
// moment is kept in memory only, and dropped when the run finishes; after a
// restart the wait starts again, which delays a report by at most
// reportDelay. Reconciles of one run never overlap, so its map
// needs no lock.
func (r *Engine) seenRunning(run *cyclonev1alpha1.WorkflowRun, pod string, now time.Time) time.Time {
	v, _ := r.running.LoadOrStore(client.ObjectKeyFromObject(run), map[string]time.Time{})
	seen := v.(map[string]time.Time)
	t, ok := seen[pod]
	if !ok {
		t = now
		seen[pod] = t
	}
	return t
}

// forgetRunning drops what seenRunning keeps of a Pod.
func (r *Engine) forgetRunning(run *cyclonev1alpha1.WorkflowRun, pod string) {
	if v, ok := r.running.Load(client.ObjectKeyFromObject(run)); ok {
		delete(v.(map[string]time.Time), pod)
	}
}

// failAttempt fails a stage's current attempt: the stage waits for its
// next attempt while retries are left, and fails otherwise.
func (r *Engine) failAttempt(s *scope, ss *cyclonev1alpha1.StageStatus, item cyclonev1alpha1.StageItem, state podState) {
	if ss.Attempt > item.Retries {
		transition(&ss.Status, cyclonev1alpha1.StatusFailed, state.Reason, state.Message, ranAt(ss, state, s.now))
		return
	}
	next := ss.Attempt + 1
	at := s.now.Add(r.cfg.retryBackoff(next))
	transition(&ss.Status, cyclonev1alpha1.StatusPending, ReasonRetrying,
		fmt.Sprintf("attempt %d failed: %s: %s; attempt %d of %d starts at %s",
			ss.Attempt, state.Reason, state.Message, next, item.Retries+1, at.UTC().Format(time.RFC3339)), s.now)
	ss.Attempt, ss.Pod = next, nil
	t := metav1.NewTime(at)
	ss.NextAttemptTime = &t
	s.wakeAt(at)
}

// runTimedOut reports whether the run has run out of time, and otherwise
// asks to be woken when it will.
func (r *Engine) runTimedOut(s *scope, st *cyclonev1alpha1.WorkflowRunStatus) bool {
	timeout, _ := convention.ParseTimeout(s.run.Spec.Timeout)
	if timeout <= 0 || st.Overall.StartTime == nil {
		return false
	}
	deadline := st.Overall.StartTime.Add(timeout)
	if s.now.Before(deadline) {
		s.wakeAt(deadline)
		return false
	}
	return true
}
