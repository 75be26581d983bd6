package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
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

// DelegationRequest is the JSON body POSTed to a delegation stage's URL,
// Cyclone's: the Stage, its Workflow, and the WorkflowRun with its status
// (status.stages[<stage>].attempt tells the attempt). The service reports
// back by setting status.stages[<stage>].status.phase of the WorkflowRun
// to Succeeded or Failed (and may set Running and outputs on the way),
// through the Kubernetes API; a write of the status subresource with the
// resourceVersion it read never undoes the engine's.
type DelegationRequest struct {
	Stage       *cyclonev1alpha1.Stage       `json:"stage"`
	Workflow    *cyclonev1alpha1.Workflow    `json:"workflow"`
	WorkflowRun *cyclonev1alpha1.WorkflowRun `json:"workflowrun"`
}

// maxDelegationResponse bounds how much of a refusal is kept in the
// stage's message.
const maxDelegationResponse = 1024

// delegate runs stage name when it is a delegation stage, and reports
// whether it was one; pod stages are left to the caller.
//
// A delegation request is sent at most once per attempt: the attempt is
// recorded in the status (reason Delegating) before the request is sent,
// and its outcome (Waiting, or the attempt failed) is recorded after. An
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
	if d == nil || stage.Spec.Pod != nil {
		return false, nil
	}
	ss := st.Stages[name]
	item := stageItem(s.workflow, name)
	if ss.Status.Phase == cyclonev1alpha1.StatusRunning && ss.Status.Reason == ReasonDelegating {
		transition(&ss.Status, cyclonev1alpha1.StatusWaiting, ReasonDelegationUnconfirmed, fmt.Sprintf(
			"the engine stopped while it sent attempt %d to %s; it is not sent again: waiting for the service to report", ss.Attempt, d.URL), s.now)
	}
	switch ss.Status.Phase {
	case cyclonev1alpha1.StatusRunning, cyclonev1alpha1.StatusWaiting:
		r.waitDelegated(s, ss, item)
		return true, nil
	}

	ss.Attempt = max(ss.Attempt, 1)
	ss.NextAttemptTime = nil
	ss.Status.Phase = "" // a new attempt: its phase starts afresh
	transition(&ss.Status, cyclonev1alpha1.StatusRunning, ReasonDelegating, fmt.Sprintf("sending attempt %d to %s", ss.Attempt, d.URL), s.now)
	now := metav1.NewTime(s.now)
	ss.Status.StartTime = &now
	// A copy, so that what is written now and what this round goes on to
	// change stay apart.
	if err := r.writeStatus(ctx, s.run, st.DeepCopy()); err != nil {
		return true, err
	}
	if err := r.sendDelegation(ctx, s, st, stage); err != nil {
		r.failAttempt(s, ss, item, podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonDelegationFailure, Message: err.Error()})
		return true, nil
	}
	transition(&ss.Status, cyclonev1alpha1.StatusWaiting, ReasonDelegationSucceed, "delegated to "+d.URL, s.now)
	r.waitDelegated(s, ss, item)
	return true, nil
}

// waitDelegated applies the stage timeout to a delegated attempt and asks
// to look at the run again soon.
func (r *Engine) waitDelegated(s *scope, ss *cyclonev1alpha1.StageStatus, item cyclonev1alpha1.StageItem) {
	timeout, _ := parseTimeout(item.Timeout)
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

// sendDelegation POSTs the delegation request of a stage's current
// attempt.
func (r *Engine) sendDelegation(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, stage *cyclonev1alpha1.Stage) error {
	run := s.run.DeepCopy()
	run.Status = *st.DeepCopy()
	// Cyclone's services read the run's variables, generated values
	// included, from its spec, where Cyclone writes them when the run
	// starts; gyre keeps them in the status.
	run.Spec.GlobalVariables = slices.Clone(st.GlobalVariables)
	req := DelegationRequest{Stage: stage.DeepCopy(), Workflow: s.workflow.DeepCopy(), WorkflowRun: run}
	// Objects from a cache carry no kind; the service should not guess.
	gv := cyclonev1alpha1.GroupVersion.String()
	req.Stage.APIVersion, req.Stage.Kind = gv, "Stage"
	req.Workflow.APIVersion, req.Workflow.Kind = gv, "Workflow"
	req.WorkflowRun.APIVersion, req.WorkflowRun.Kind = gv, "WorkflowRun"
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode delegation request: %w", err)
	}
	url := stage.Spec.Delegation.URL
	if !strings.Contains(url, "://") {
		url = "http://" + url // as Cyclone does
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("stage %s: spec.delegation.url: %w", stage.Name, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := r.cfg.HTTPClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxDelegationResponse))
		return fmt.Errorf("POST %s: status %d: %s", url, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}
