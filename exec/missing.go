package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// ReasonWaitingForObject says a run or stage waits for a Workflow, Stage
// or Resource the engine has not seen yet.
const ReasonWaitingForObject = "WaitingForObject"

// waitingError says an object a stage needs is missing from the engine's
// cache while the run is young enough for it to be on its way: the Git
// commit that added the run added it too, and the cache has not caught
// up. The stage waits instead of failing.
type waitingError struct{ msg string }

func (e *waitingError) Error() string { return e.msg }

// missingDeadline is when an object the run names may no longer be
// missing: the grace period counts from the run's creation, so that
// neither a restart nor a requeue starts it over.
func (r *Engine) missingDeadline(s *scope) time.Time {
	return s.run.CreationTimestamp.Add(r.cfg.MissingGracePeriod)
}

// missing returns the error for an object of kind the run names and
// namespace does not hold: a waitingError within the grace period, else the
// failure, which names the object and how long it was waited for.
func (r *Engine) missing(s *scope, kind, name, namespace string, fail func(msg string) error) error {
	if s.now.Before(r.missingDeadline(s)) {
		return &waitingError{msg: fmt.Sprintf("waiting for %s %s, which the engine has not seen yet", kind, name)}
	}
	return fail(fmt.Sprintf("%s %s not found in namespace %s %s after the run was created",
		kind, name, namespace, r.cfg.MissingGracePeriod))
}

// wakeForMissing asks for another look while an object is awaited: at the
// wait interval, and no later than the end of the grace period.
func (r *Engine) wakeForMissing(s *scope) {
	t := s.now.Add(r.cfg.WaitInterval)
	if d := r.missingDeadline(s); d.Before(t) {
		t = d
	}
	s.wakeAt(t)
}

// waitForWorkflow keeps a young run whose Workflow the cache has not seen
// Pending, and fails it once the grace period is over.
func (r *Engine) waitForWorkflow(ctx context.Context, s *scope) error {
	err := r.missing(s, "workflow", workflowName(s.run), s.run.Namespace, func(msg string) error {
		return r.failRun(ctx, s, ReasonInvalidWorkflow, msg)
	})
	var waiting *waitingError
	if !errors.As(err, &waiting) {
		return err
	}
	return r.waitRun(ctx, s, waiting.msg)
}

// waitRun keeps a run that has not started Pending, saying what it waits
// for, and looks again soon.
func (r *Engine) waitRun(ctx context.Context, s *scope, msg string) error {
	st := s.run.Status.DeepCopy()
	if st.Overall.Phase == "" {
		st.Overall.Phase = cyclonev1alpha1.StatusPending
	}
	st.Overall.Reason, st.Overall.Message = ReasonWaitingForObject, msg
	r.wakeForMissing(s)
	return r.writeStatus(ctx, s.run, st)
}

// asWaiting keeps a stage whose Stage or Resources are still awaited
// Pending, and reports whether err was of that kind.
func (r *Engine) asWaiting(err error, s *scope, ss *cyclonev1alpha1.StageStatus) bool {
	var waiting *waitingError
	if !errors.As(err, &waiting) {
		return false
	}
	transition(&ss.Status, cyclonev1alpha1.StatusPending, ReasonWaitingForObject, waiting.msg, s.now)
	r.wakeForMissing(s)
	return true
}
