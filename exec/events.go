package exec

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// Reasons of the Events the engine records on WorkflowRuns.
const (
	// EventStarted: the run started.
	EventStarted = "Started"
	// EventStageSucceeded: stages succeeded, all those one status write
	// records in one Event, and none when that write records the run's
	// success. EventStageFailed: a stage failed.
	EventStageSucceeded = "StageSucceeded"
	EventStageFailed    = "StageFailed"
	// EventSucceeded, EventFailed and EventCancelled: the run finished.
	EventSucceeded = "Succeeded"
	EventFailed    = "Failed"
	EventCancelled = "Cancelled"
	// EventGCSucceeded and EventGCFailed: the run's Pods and scratch data
	// are removed, or could not be.
	EventGCSucceeded = "GCSucceeded"
	EventGCFailed    = "GCFailed"
)

// recordTransitions records an Event for each transition between the
// status the engine has just written and the one before. Events follow
// written status, so a restarted engine that finds a transition already
// written does not record it twice.
func (r *Engine) recordTransitions(run *cyclonev1alpha1.WorkflowRun, old *cyclonev1alpha1.WorkflowRunStatus) {
	if r.recorder == nil {
		return
	}
	st := &run.Status
	if old.Overall.StartTime == nil && st.Overall.StartTime != nil {
		r.recorder.Eventf(run, nil, corev1.EventTypeNormal, EventStarted, "Start", "Run started")
	}
	names := make([]string, 0, len(st.Stages))
	for name := range st.Stages {
		names = append(names, name)
	}
	slices.Sort(names)
	// Stages that succeeded in one write share one Event: each Event is
	// a write to the API server, and a failure is where a message is.
	var succeeded []string
	for _, name := range names {
		now := st.Stages[name]
		var before cyclonev1alpha1.StatusPhase
		if b := old.Stages[name]; b != nil {
			before = b.Status.Phase
		}
		if now == nil || now.Status.Phase == before {
			continue
		}
		switch now.Status.Phase {
		case cyclonev1alpha1.StatusSucceeded:
			succeeded = append(succeeded, name)
		case cyclonev1alpha1.StatusFailed:
			r.recorder.Eventf(run, nil, corev1.EventTypeWarning, EventStageFailed, "RunStage", "Stage %s failed: %s: %s", name, now.Status.Reason, truncate(now.Status.Message))
		}
	}
	// A run's success says that every stage succeeded.
	if st.Overall.Phase == cyclonev1alpha1.StatusSucceeded && old.Overall.Phase != st.Overall.Phase {
		succeeded = nil
	}
	switch len(succeeded) {
	case 0:
	case 1:
		r.recorder.Eventf(run, nil, corev1.EventTypeNormal, EventStageSucceeded, "RunStage", "Stage %s succeeded", succeeded[0])
	default:
		r.recorder.Eventf(run, nil, corev1.EventTypeNormal, EventStageSucceeded, "RunStage", "Stages %s succeeded", truncate(strings.Join(succeeded, ", ")))
	}
	if st.Overall.Phase != old.Overall.Phase {
		switch st.Overall.Phase {
		case cyclonev1alpha1.StatusSucceeded:
			r.recorder.Eventf(run, nil, corev1.EventTypeNormal, EventSucceeded, "Finish", "Run succeeded")
		case cyclonev1alpha1.StatusFailed:
			r.recorder.Eventf(run, nil, corev1.EventTypeWarning, EventFailed, "Finish", "Run failed: %s: %s", st.Overall.Reason, truncate(st.Overall.Message))
		case cyclonev1alpha1.StatusCancelled:
			r.recorder.Eventf(run, nil, corev1.EventTypeNormal, EventCancelled, "Finish", "Run cancelled: %s", truncate(st.Overall.Message))
		}
	}
	var gcBefore, gcNow cyclonev1alpha1.GCPhase
	if old.GC != nil {
		gcBefore = old.GC.Phase
	}
	if st.GC != nil {
		gcNow = st.GC.Phase
	}
	if gcNow != gcBefore {
		switch gcNow {
		case cyclonev1alpha1.GCSucceeded:
			r.recorder.Eventf(run, nil, corev1.EventTypeNormal, EventGCSucceeded, "GarbageCollect", "Pods and scratch data removed")
		case cyclonev1alpha1.GCFailed:
			r.recorder.Eventf(run, nil, corev1.EventTypeWarning, EventGCFailed, "GarbageCollect", "Scratch data not removed: %s", truncate(st.GC.Message))
		}
	}
}

// truncate keeps a message within what an Event note may hold (1 kB).
func truncate(s string) string {
	const max = 900
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
