package web

import (
	"net/http"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

type runData struct {
	Namespace, Name, Tenant, Workflow, Phase, Reason, Message string
	Started, Took                                             string
	// Unfinished is true while the run may change: the page refreshes
	// its status.
	Unfinished bool
	DAG        dag
	Stages     []stageView
	// Parameters are those the run gives stages and Resources, and the
	// final values of its global variables.
	Parameters []parameter
}

type stageView struct {
	Name, Phase, Started, Took, Message string
	Attempt                             int32
	Outputs                             []parameter
	// Unfinished is true while the stage may yet start or write: the page
	// asks again for a log the stage does not have yet.
	Unfinished bool
}

type parameter struct {
	Scope, Name, Value string
}

func (s *Server) run(w http.ResponseWriter, r *http.Request, v *viewer) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	ok, err := v.may(r.Context(), cycloneGroup, "workflowruns", ns, name)
	if err != nil {
		s.fail(w, r, err, "checking your access to the run")
		return
	}
	if !ok {
		s.forbidden(w, r, v, "workflowruns "+name+" in namespace "+ns)
		return
	}
	run := &cyclonev1alpha1.WorkflowRun{}
	if err := s.reader.Get(r.Context(), types.NamespacedName{Namespace: ns, Name: name}, run); err != nil {
		if apierrors.IsNotFound(err) {
			s.renderFor(w, r, http.StatusNotFound, "error.html", v, errorData{Title: "Not found", Message: "WorkflowRun " + ns + "/" + name + " does not exist."})
			return
		}
		s.fail(w, r, err, "reading the run")
		return
	}
	s.renderFor(w, r, http.StatusOK, "run.html", v, s.runView(run))
}

func (s *Server) runView(run *cyclonev1alpha1.WorkflowRun) runData {
	now := s.o.Clock.Now()
	d := runData{
		Namespace: run.Namespace, Name: run.Name, Tenant: tenantOfNamespace(run.Namespace), Workflow: workflowOf(run),
		Phase: phaseOf(run.Status.Overall), Reason: run.Status.Overall.Reason, Message: run.Status.Overall.Message,
	}
	d.Started, d.Took = runTiming(run.Status.Overall, now)
	d.Unfinished = unfinished(run.Status.Overall.Phase)
	var stages []dagStage
	for name, st := range run.Status.Stages {
		if st == nil {
			continue
		}
		_, took := runTiming(st.Status, now)
		stages = append(stages, dagStage{Name: name, Depends: st.Depends, Phase: phaseOf(st.Status), Timing: took})
	}
	slices.SortFunc(stages, func(a, b dagStage) int { return strings.Compare(a.Name, b.Name) })
	d.DAG = layoutDAG(stages)
	for _, name := range stageOrder(d.DAG) {
		st := run.Status.Stages[name]
		sv := stageView{Name: name, Phase: phaseOf(st.Status), Message: st.Status.Message, Attempt: st.Attempt}
		sv.Started, sv.Took = runTiming(st.Status, now)
		sv.Unfinished = unfinished(st.Status.Phase) && unfinished(run.Status.Overall.Phase)
		for _, o := range st.Outputs {
			sv.Outputs = append(sv.Outputs, parameter{Name: o.Key, Value: o.Value})
		}
		d.Stages = append(d.Stages, sv)
	}
	for _, pc := range run.Spec.StageParams {
		for _, p := range pc.Parameters {
			d.Parameters = append(d.Parameters, parameter{Scope: "stage " + pc.Name, Name: p.Name, Value: deref(p.Value)})
		}
	}
	for _, pc := range run.Spec.ResourceParams {
		for _, p := range pc.Parameters {
			d.Parameters = append(d.Parameters, parameter{Scope: "resource " + pc.Name, Name: p.Name, Value: deref(p.Value)})
		}
	}
	for _, g := range run.Status.GlobalVariables {
		d.Parameters = append(d.Parameters, parameter{Scope: "variable", Name: g.Name, Value: g.Value})
	}
	slices.SortStableFunc(d.Parameters, func(a, b parameter) int {
		if c := strings.Compare(a.Scope, b.Scope); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return d
}

// unfinished says whether a stage or run in phase may still change.
func unfinished(phase cyclonev1alpha1.StatusPhase) bool {
	switch phase {
	case "", cyclonev1alpha1.StatusPending, cyclonev1alpha1.StatusRunning, cyclonev1alpha1.StatusWaiting:
		return true
	}
	return false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
