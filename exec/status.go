package exec

import (
	"fmt"
	"slices"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// transition moves a status to phase. A finished status never changes
// again: that is what keeps a late or stale observation from regressing a
// stage or a run.
func transition(s *cyclonev1alpha1.Status, phase cyclonev1alpha1.StatusPhase, reason, message string, now time.Time) {
	if convention.Finished(s.Phase) {
		return
	}
	t := metav1.NewTime(now)
	if s.Phase != phase {
		s.LastTransitionTime = &t
	}
	s.Phase, s.Reason, s.Message = phase, reason, message
	if convention.Finished(phase) {
		s.CompletionTime = &t
	}
}

// active reports whether a stage has an attempt in flight: a Pod recorded
// and not finished.
func active(s *cyclonev1alpha1.StageStatus) bool {
	return s.Pod != nil && !convention.Finished(s.Status.Phase)
}

// depsMet reports whether every stage s depends on has finished in a way
// that lets s start: succeeded, or failed but trivial.
func depsMet(stages map[string]*cyclonev1alpha1.StageStatus, s *cyclonev1alpha1.StageStatus) bool {
	for _, d := range s.Depends {
		dep := stages[d]
		if dep == nil {
			continue
		}
		ok := dep.Status.Phase == cyclonev1alpha1.StatusSucceeded ||
			(dep.Status.Phase == cyclonev1alpha1.StatusFailed && dep.Trivial)
		if !ok {
			return false
		}
	}
	return true
}

// blockingFailure returns the first stage, by name, that failed and is not
// trivial: it fails the run.
func blockingFailure(stages map[string]*cyclonev1alpha1.StageStatus) (string, bool) {
	for _, name := range sortedStages(stages) {
		s := stages[name]
		if s.Status.Phase == cyclonev1alpha1.StatusFailed && !s.Trivial {
			return name, true
		}
	}
	return "", false
}

// summarize derives the run's overall status from its stages. After a
// blocking failure no stage starts any more; stages that never started
// are cancelled, and the run fails once no attempt is in flight.
func summarize(st *cyclonev1alpha1.WorkflowRunStatus, now time.Time) {
	if failed, ok := blockingFailure(st.Stages); ok {
		inFlight := false
		for _, name := range sortedStages(st.Stages) {
			s := st.Stages[name]
			if active(s) {
				inFlight = true
				continue
			}
			if !convention.Finished(s.Status.Phase) {
				transition(&s.Status, cyclonev1alpha1.StatusCancelled, ReasonUpstreamFailed,
					fmt.Sprintf("not run: stage %s failed", failed), now)
				s.NextAttemptTime = nil
			}
		}
		if !inFlight {
			f := st.Stages[failed].Status
			transition(&st.Overall, cyclonev1alpha1.StatusFailed, ReasonStageFailed,
				fmt.Sprintf("stage %s failed: %s", failed, f.Message), now)
		}
		return
	}
	for _, s := range st.Stages {
		if !convention.Finished(s.Status.Phase) {
			return
		}
	}
	transition(&st.Overall, cyclonev1alpha1.StatusSucceeded, ReasonCompleted, "", now)
}

// endStages finishes every unfinished stage: those with an attempt in
// flight as inFlight, the others as Cancelled.
func endStages(st *cyclonev1alpha1.WorkflowRunStatus, inFlight cyclonev1alpha1.StatusPhase, reason, message string, now time.Time) {
	for _, s := range st.Stages {
		phase := cyclonev1alpha1.StatusCancelled
		if active(s) {
			phase = inFlight
		}
		transition(&s.Status, phase, reason, message, now)
		s.NextAttemptTime = nil
	}
}

// sortedStages returns the stage names in a stable order.
func sortedStages(stages map[string]*cyclonev1alpha1.StageStatus) []string {
	names := make([]string, 0, len(stages))
	for n := range stages {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// scheduleOrder returns stage names in the Workflow's order, stages no
// longer in the Workflow last: it decides who goes first under a cap.
func scheduleOrder(stages map[string]*cyclonev1alpha1.StageStatus, wf *cyclonev1alpha1.Workflow) []string {
	names := make([]string, 0, len(stages))
	for _, it := range wf.Spec.Stages {
		if _, ok := stages[it.Name]; ok {
			names = append(names, it.Name)
		}
	}
	for _, n := range sortedStages(stages) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}
