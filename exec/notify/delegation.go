package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/netguard"
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

// DelegationBody is the encoded delegation request of a stage's current
// attempt: run with status st.
func DelegationBody(run *cyclonev1alpha1.WorkflowRun, st *cyclonev1alpha1.WorkflowRunStatus, wf *cyclonev1alpha1.Workflow, stage *cyclonev1alpha1.Stage) ([]byte, error) {
	run = run.DeepCopy()
	run.Status = *st.DeepCopy()
	// Cyclone's services read the run's variables, generated values
	// included, from its spec, where Cyclone writes them when the run
	// starts; gyre keeps them in the status.
	run.Spec.GlobalVariables = slices.Clone(st.GlobalVariables)
	req := DelegationRequest{Stage: stage.DeepCopy(), Workflow: wf.DeepCopy(), WorkflowRun: run}
	// Objects from a cache carry no kind; the service should not guess.
	gv := cyclonev1alpha1.GroupVersion.String()
	req.Stage.APIVersion, req.Stage.Kind = gv, "Stage"
	req.Workflow.APIVersion, req.Workflow.Kind = gv, "Workflow"
	req.WorkflowRun.APIVersion, req.WorkflowRun.Kind = gv, "WorkflowRun"
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode delegation request: %w", err)
	}
	return body, nil
}

// DelegationURL is a stage's spec.delegation.url with a scheme: Cyclone
// takes a bare host[:port]/path as http.
func DelegationURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return "http://" + raw
	}
	return raw
}

// delegationTimeout bounds one delegation request.
const delegationTimeout = 30 * time.Second

// Delegate POSTs an encoded delegation request to url. Its error is a
// short reason, such as "HTTP 503" or "refused: 127.0.0.1 is a loopback
// address": the service's answer and the URL, which may hold a
// credential, stay out of the stage's status.
func (s *Sender) Delegate(ctx context.Context, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, delegationTimeout)
	defer cancel()
	code, _, err := s.post(ctx, url, "application/json", "", body)
	if err != nil {
		return fmt.Errorf("delegation request: %w", err)
	}
	if code/100 != 2 {
		return fmt.Errorf("delegation request: %s", netguard.StatusReason(code))
	}
	return nil
}
