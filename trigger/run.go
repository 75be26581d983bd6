package trigger

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// triggerLabel is the value of LabelTrigger for a trigger name.
func triggerLabel(name string) string {
	return convention.RunName(name, "")
}

// newRun builds the run trig starts under name. Variables are the trigger's
// parameters and extra, in that order, over the run spec's own global
// variables; a later value of the same name wins.
//
// The run carries the engine's finalizer from its creation, so that the
// engine does not spend a write on adding it. That holds no run longer
// than the engine would: a deleted run's finalizer is removed by the
// engine that serves its namespace, and a namespace whose Tenant is gone
// or being deleted is served by the replicas without a shard, which
// remove it without cleaning anything (see exec's reconcileDelete).
func newRun(trig *cyclonev1alpha1.WorkflowTrigger, name string, annotations map[string]string, extra []cyclonev1alpha1.GlobalVariable) *cyclonev1alpha1.WorkflowRun {
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: trig.Namespace,
			Labels: map[string]string{
				convention.LabelTrigger:     triggerLabel(trig.Name),
				convention.LabelTriggerType: string(trig.Spec.Type),
			},
			Annotations: map[string]string{convention.AnnotationTrigger: trig.Name},
			Finalizers:  []string{convention.RunFinalizer},
		},
		Spec: *trig.Spec.WorkflowRunSpec.DeepCopy(),
	}
	for _, k := range convention.InheritedRunLabels {
		if v, ok := trig.Labels[k]; ok {
			run.Labels[k] = v
		}
	}
	// A Workflow name longer than a label value may be leaves the label
	// off: shortened, it would name no Workflow; whole, the run could not
	// be created.
	if ref := run.Spec.WorkflowRef; ref != nil && ref.Name != "" && len(validation.IsValidLabelValue(ref.Name)) == 0 {
		run.Labels[convention.LabelWorkflow] = ref.Name
	}
	for k, v := range annotations {
		run.Annotations[k] = v
	}
	// A trigger whose template says stop would start runs that never run.
	run.Spec.Stop = false

	vars := run.Spec.GlobalVariables
	for _, p := range trig.Spec.Parameters {
		if p.Value != nil {
			vars = setVariable(vars, p.Name, *p.Value)
		}
	}
	for _, v := range extra {
		vars = setVariable(vars, v.Name, v.Value)
	}
	run.Spec.GlobalVariables = vars
	return run
}

// setVariable sets name to value in vars, in place when it is there.
func setVariable(vars []cyclonev1alpha1.GlobalVariable, name, value string) []cyclonev1alpha1.GlobalVariable {
	for i := range vars {
		if vars[i].Name == name {
			vars[i].Value = value
			return vars
		}
	}
	return append(vars, cyclonev1alpha1.GlobalVariable{Name: name, Value: value})
}

// setParameter sets name to value in params, in place when it is there.
func setParameter(params []cyclonev1alpha1.ParameterItem, name, value string) []cyclonev1alpha1.ParameterItem {
	for i := range params {
		if params[i].Name == name {
			params[i].Value = &value
			return params
		}
	}
	return append(params, cyclonev1alpha1.ParameterItem{Name: name, Value: &value})
}

// startedBy reports whether trig started run.
func startedBy(run *cyclonev1alpha1.WorkflowRun, trig *cyclonev1alpha1.WorkflowTrigger) bool {
	return run.Annotations[convention.AnnotationTrigger] == trig.Name
}
