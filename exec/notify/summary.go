package notify

import (
	"fmt"
	"sort"
	"strings"
	"time"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// Summary is the text of the Email and Slack notifications about a
// finished run. It depends on the run alone, so that two deliveries of the
// same run say the same.
func Summary(run *cyclonev1alpha1.WorkflowRun) string {
	var b strings.Builder
	o := run.Status.Overall
	workflow := ""
	if run.Spec.WorkflowRef != nil {
		workflow = run.Spec.WorkflowRef.Name
	}
	fmt.Fprintf(&b, "WorkflowRun %s/%s %s\n", run.Namespace, run.Name, phaseText(o.Phase))
	fmt.Fprintf(&b, "Workflow: %s\n", workflow)
	if o.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", o.Reason)
	}
	if o.Message != "" {
		fmt.Fprintf(&b, "Message: %s\n", oneLine(o.Message))
	}
	if o.StartTime != nil && o.CompletionTime != nil {
		fmt.Fprintf(&b, "Duration: %s\n", o.CompletionTime.Sub(o.StartTime.Time).Round(time.Second))
	}
	names := make([]string, 0, len(run.Status.Stages))
	for name, s := range run.Status.Stages {
		if s != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		b.WriteString("Stages:\n")
	}
	for _, name := range names {
		fmt.Fprintf(&b, "- %s: %s\n", name, statusText(run.Status.Stages[name].Status))
	}
	return b.String()
}

// subject is the e-mail subject of a notification about run.
func subject(run *cyclonev1alpha1.WorkflowRun) string {
	return fmt.Sprintf("[gyre] WorkflowRun %s/%s %s", run.Namespace, run.Name, phaseText(run.Status.Overall.Phase))
}

// statusText is a stage's phase, followed by why when the status says.
func statusText(st cyclonev1alpha1.Status) string {
	s := phaseText(st.Phase)
	switch msg := oneLine(st.Message); {
	case st.Reason != "" && msg != "":
		return s + " (" + st.Reason + ": " + msg + ")"
	case st.Reason != "" || msg != "":
		return s + " (" + st.Reason + msg + ")"
	}
	return s
}

func phaseText(p cyclonev1alpha1.StatusPhase) string {
	if p == "" {
		return "not started"
	}
	return string(p)
}

// oneLine folds a multi-line message, such as a container's termination
// message, so that each stage keeps to one line of the summary.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
