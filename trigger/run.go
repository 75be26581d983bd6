package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// Labels and annotations on the runs a trigger starts.
const (
	// LabelTrigger holds the name of the trigger that started a run,
	// shortened with a hash when it is longer than a label value may be.
	LabelTrigger = "gyre.dev/trigger"
	// LabelTriggerType is "Cron" or "SCM".
	LabelTriggerType = "gyre.dev/trigger-type"
	// AnnotationTrigger holds the full name of the trigger.
	AnnotationTrigger = "gyre.dev/trigger"
	// AnnotationScheduleTime is the scheduled time a cron run was started
	// for, in RFC 3339.
	AnnotationScheduleTime = "gyre.dev/schedule-time"
	// AnnotationSCMDelivery is the delivery id of the webhook event that
	// started a run.
	AnnotationSCMDelivery = "gyre.dev/scm-delivery"
	// LabelSCMEvent identifies the SCM event that started a run, whatever
	// delivery brought it: a hash of the trigger, the event's kind,
	// repository, ref, commit and comment (see replayKey). A delivery of
	// an event that has a run within the replay window starts none.
	LabelSCMEvent = "gyre.dev/scm-event-key"
	// AnnotationSCMReceived is when the webhook server received the event
	// that started a run, in RFC 3339, by the server's clock: the replay
	// window counts from it.
	AnnotationSCMReceived = "gyre.dev/scm-received"
	// AnnotationSCMEvent is the kind of SCM event that started a run:
	// push, tag, pullRequest, pullRequestComment or postCommit.
	AnnotationSCMEvent = "gyre.dev/scm-event"
)

// Cyclone's labels on the runs its triggers start, which its server and UI
// list runs by. The engine finds a run's Project by labelProject too.
const (
	// labelProject names the Project a run belongs to. Cyclone copies it
	// from the trigger's labels.
	labelProject = "project.cyclone.dev/name"
	// labelWorkflow names the Workflow a run runs: the name in its
	// workflowRef.
	labelWorkflow = "workflow.cyclone.dev/name"
)

// Labels copied from a trigger onto its runs: Cyclone's project label, and
// the tenant and cluster labels gyre renders onto every object, so that
// Cyclone's project views and gyre's tenancy views see the runs.
var inheritedLabels = []string{labelProject, "cyclone.dev/tenant", "gyre.dev/cluster"}

// maxNameLength keeps run names valid as label values and leaves room for
// the names of the Pods the engine derives from them.
const maxNameLength = 63

// shortName joins prefix and suffix with a dash. When the result would be
// longer than maxNameLength, the prefix is cut and a hash of the whole
// prefix keeps names of different long prefixes apart.
func shortName(prefix, suffix string) string {
	name := prefix + "-" + suffix
	if suffix == "" {
		name = prefix
	}
	if len(name) <= maxNameLength {
		return name
	}
	h := hash(prefix, 8)
	keep := maxNameLength - len(h) - 1
	if suffix != "" {
		keep -= len(suffix) + 1
	}
	cut := strings.TrimRight(prefix[:max(keep, 1)], "-.")
	if suffix == "" {
		return cut + "-" + h
	}
	return cut + "-" + h + "-" + suffix
}

// hash returns the first n hex digits of the SHA-256 of s.
func hash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// triggerLabel is the value of LabelTrigger for a trigger name.
func triggerLabel(name string) string {
	return shortName(name, "")
}

// newRun builds the run trig starts under name. Variables are the trigger's
// parameters and extra, in that order, over the run spec's own global
// variables; a later value of the same name wins.
func newRun(trig *cyclonev1alpha1.WorkflowTrigger, name string, annotations map[string]string, extra []cyclonev1alpha1.GlobalVariable) *cyclonev1alpha1.WorkflowRun {
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: trig.Namespace,
			Labels: map[string]string{
				LabelTrigger:     triggerLabel(trig.Name),
				LabelTriggerType: string(trig.Spec.Type),
			},
			Annotations: map[string]string{AnnotationTrigger: trig.Name},
		},
		Spec: *trig.Spec.WorkflowRunSpec.DeepCopy(),
	}
	for _, k := range inheritedLabels {
		if v, ok := trig.Labels[k]; ok {
			run.Labels[k] = v
		}
	}
	// A Workflow name longer than a label value may be leaves the label
	// off: shortened, it would name no Workflow; whole, the run could not
	// be created.
	if ref := run.Spec.WorkflowRef; ref != nil && ref.Name != "" && len(validation.IsValidLabelValue(ref.Name)) == 0 {
		run.Labels[labelWorkflow] = ref.Name
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

// finished reports whether a run has reached a final phase.
func finished(run *cyclonev1alpha1.WorkflowRun) bool {
	switch run.Status.Overall.Phase {
	case cyclonev1alpha1.StatusSucceeded, cyclonev1alpha1.StatusFailed, cyclonev1alpha1.StatusCancelled:
		return true
	}
	return false
}

// startedBy reports whether trig started run.
func startedBy(run *cyclonev1alpha1.WorkflowRun, trig *cyclonev1alpha1.WorkflowTrigger) bool {
	return run.Annotations[AnnotationTrigger] == trig.Name
}
