package convention

import cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"

// Finished reports whether a phase is final for a stage or a run: nothing
// changes it again.
func Finished(p cyclonev1alpha1.StatusPhase) bool {
	switch p {
	case cyclonev1alpha1.StatusSucceeded, cyclonev1alpha1.StatusFailed, cyclonev1alpha1.StatusCancelled:
		return true
	}
	return false
}

// RunFinished reports whether a run has reached a final phase.
func RunFinished(run *cyclonev1alpha1.WorkflowRun) bool {
	return Finished(run.Status.Overall.Phase)
}
