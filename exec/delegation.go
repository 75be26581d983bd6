package exec

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/netguard"
)

// Reasons on delegation stages; DelegationSucceed and DelegationFailure
// are Cyclone's.
const (
	// ReasonDelegating: the request of the current attempt is being sent.
	ReasonDelegating = "Delegating"
	// ReasonDelegationSucceed: the service accepted the request; the stage
	// waits for the service to report its outcome.
	ReasonDelegationSucceed = "DelegationSucceed"
	// ReasonDelegationFailure: the request failed or the service refused
	// it.
	ReasonDelegationFailure = "DelegationFailure"
	// ReasonDelegationUnconfirmed: the engine stopped while it sent the
	// request, so whether the service got it is unknown. It is not sent
	// again; the stage waits as if it had been.
	ReasonDelegationUnconfirmed = "DelegationUnconfirmed"
)

// delegate runs stage name when it is a delegation stage, and reports
// whether it was one; pod stages are left to the caller.
//
// A delegation request is sent at most once per attempt: the attempt is
// recorded in the status (reason Delegating) before the request is sent,
// in the background, and its outcome (Waiting, or the attempt failed) is
// recorded by the reconcile that the send's end wakes. An
// engine that stops in between finds the attempt still Delegating, cannot
// know whether the service got the request, and does not send it again:
// a service that got it twice could run the work twice, while one that
// never got it only leaves the stage waiting until the stage's or the
// run's timeout ends it. Sending again after a restart would turn a lost
// confirmation into duplicated work, which a deploy stage cannot undo.
//
// While the stage waits, the engine looks at the run every WaitInterval:
// the service reports through the status, and status-only writes do not
// wake the engine.
func (r *Engine) delegate(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, name string) (bool, error) {
	stage := &cyclonev1alpha1.Stage{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: s.run.Namespace, Name: name}, stage); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil // buildPod reports it
		}
		return false, fmt.Errorf("get stage %s: %w", name, err)
	}
	d := stage.Spec.Delegation
	if d == nil || stage.Spec.Pod != nil || stage.Labels[cyclonev1alpha1.LabelStageTemplate] == "true" {
		return false, nil // buildPod refuses a template
	}
	s.writeNow = true
	ss := st.Stages[name]
	item := stageItem(s.workflow, name)
	key := delegationKey(name, max(ss.Attempt, 1))
	switch {
	case r.deliveries.Known(s.run, key):
		// This engine is sending the attempt, or has sent it; a run read
		// from a cache that has not seen Delegating yet lands here too.
		r.delegated(s, ss, item, key, d.URL)
		return true, nil
	case ss.Status.Phase == cyclonev1alpha1.StatusRunning && ss.Status.Reason == ReasonDelegating:
		transition(&ss.Status, cyclonev1alpha1.StatusWaiting, ReasonDelegationUnconfirmed, fmt.Sprintf(
			"the engine stopped while it sent attempt %d to %s; it is not sent again: waiting for the service to report", ss.Attempt, netguard.RedactURL(notify.DelegationURL(d.URL))), s.now)
	}
	switch ss.Status.Phase {
	case cyclonev1alpha1.StatusRunning, cyclonev1alpha1.StatusWaiting:
		r.waitDelegated(s, ss, item)
		return true, nil
	}

	ss.Attempt = max(ss.Attempt, 1)
	ss.NextAttemptTime = nil
	ss.Status.Phase = "" // a new attempt: its phase starts afresh
	transition(&ss.Status, cyclonev1alpha1.StatusRunning, ReasonDelegating, fmt.Sprintf("sending attempt %d to %s", ss.Attempt, netguard.RedactURL(notify.DelegationURL(d.URL))), s.now)
	now := metav1.NewTime(s.now)
	ss.Status.StartTime = &now
	body, err := notify.DelegationBody(s.run, st, s.workflow, stage)
	if err != nil {
		r.failAttempt(s, ss, item, podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonDelegationFailure, Message: err.Error()})
		return true, nil
	}
	// A copy, so that what is written now and what this round goes on to
	// change stay apart.
	if err := r.writeStatus(ctx, s.run, st.DeepCopy()); err != nil {
		return true, err
	}
	// The request is sent in the background: a service that does not
	// answer must not hold a reconcile worker. The send that ends wakes
	// the run, whose next reconcile records the outcome (see delegated).
	r.deliveries.Outcome(s.run, key, func(ctx context.Context) cyclonev1alpha1.NotificationStatus {
		return notify.Outcome(r.sender.Delegate(ctx, notify.DelegationURL(d.URL), body))
	})
	r.waitDelegated(s, ss, item)
	s.wakeAt(s.now.Add(notify.Poll))
	return true, nil
}

// delegationKey names the send of one attempt of a delegation stage among
// the run's background sends.
func delegationKey(stage string, attempt int32) string {
	return fmt.Sprintf("delegation:%s:%d", stage, attempt)
}

// delegated records the outcome of the attempt's request once its send
// has ended, and waits for it otherwise.
func (r *Engine) delegated(s *scope, ss *cyclonev1alpha1.StageStatus, item cyclonev1alpha1.StageItem, key, url string) {
	out, ok := r.deliveries.Outcome(s.run, key, nil)
	if !ok {
		r.waitDelegated(s, ss, item)
		s.wakeAt(s.now.Add(notify.Poll))
		return
	}
	switch {
	case ss.Status.Phase == cyclonev1alpha1.StatusRunning && ss.Status.Reason == ReasonDelegating:
	case ss.Status.Phase == cyclonev1alpha1.StatusPending || ss.Status.Phase == "":
		// A read that has not seen the attempt start yet: the outcome
		// waits for a fresher one.
		s.wakeAt(s.now.Add(notify.Poll))
		return
	default:
		r.deliveries.Drop(s.run, key)
		return // the attempt ended meanwhile, by its timeout or the run's
	}
	r.deliveries.Drop(s.run, key)
	if out.Result == cyclonev1alpha1.NotificationResultFailed {
		r.failAttempt(s, ss, item, podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonDelegationFailure, Message: out.Message})
		return
	}
	transition(&ss.Status, cyclonev1alpha1.StatusWaiting, ReasonDelegationSucceed, "delegated to "+netguard.RedactURL(notify.DelegationURL(url)), s.now)
	r.waitDelegated(s, ss, item)
}

// waitDelegated applies the stage timeout to a delegated attempt and asks
// to look at the run again soon.
func (r *Engine) waitDelegated(s *scope, ss *cyclonev1alpha1.StageStatus, item cyclonev1alpha1.StageItem) {
	timeout, _ := convention.ParseTimeout(item.Timeout)
	if timeout > 0 && ss.Status.StartTime != nil {
		deadline := ss.Status.StartTime.Add(timeout)
		if !s.now.Before(deadline) {
			r.failAttempt(s, ss, item, podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonTimeout,
				Message: fmt.Sprintf("attempt %d exceeded the stage timeout of %s", ss.Attempt, item.Timeout)})
			return
		}
		s.wakeAt(deadline)
	}
	s.wakeAt(s.now.Add(r.cfg.WaitInterval))
}
