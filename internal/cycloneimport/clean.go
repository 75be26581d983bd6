package cycloneimport

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/gyreops/gyre/internal/convention"
)

// Labels and annotations that record what happened to an object rather
// than what it should be: the API server's, kubectl's, Cyclone's
// controllers' and gyre's own stamps (render puts gyre's back).
var (
	droppedLabels = map[string]bool{
		"workflowrun.cyclone.dev/notification-sent": true,
		convention.TenantLabel:                      true,
		convention.TargetLabel:                      true,
		convention.LegacyTenantLabel:                true,
		convention.LegacyTargetLabel:                true,
	}
	droppedAnnotations = map[string]bool{
		"kubectl.kubernetes.io/last-applied-configuration": true,
		"project.cyclone.dev/cache-cleanup-status":         true,
		"tenant.cyclone.dev/storage-usage":                 true,
		"stage.cyclone.dev/execution-results":              true,
		convention.RevisionAnnotation:                      true,
		convention.DigestAnnotation:                        true,
	}
)

// clean returns obj as it would be written by hand: apiVersion, kind,
// name, its own labels and annotations, and every top-level field but
// metadata and status (spec for Cyclone kinds; type and data for a
// Secret). The namespace goes too, since gyre puts every object of a
// tenant in its namespace. It returns what it dropped that a user may
// miss: owner references to objects outside Cyclone and foreign
// finalizers (Cyclone's owner references, a Workflow owning its runs,
// are restored by the engine and go without a word).
func clean(obj *unstructured.Unstructured) (*unstructured.Unstructured, []string) {
	out := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range obj.Object {
		if k == "metadata" || k == "status" {
			continue
		}
		out.Object[k] = v
	}
	out = out.DeepCopy()
	out.SetName(obj.GetName())
	if l := keep(obj.GetLabels(), droppedLabels); len(l) > 0 {
		out.SetLabels(l)
	}
	if a := keep(obj.GetAnnotations(), droppedAnnotations); len(a) > 0 {
		out.SetAnnotations(a)
	}
	var dropped []string
	for _, ref := range obj.GetOwnerReferences() {
		if group, _, _ := strings.Cut(ref.APIVersion, "/"); group != "cyclone.dev" {
			dropped = append(dropped, fmt.Sprintf("owner reference to %s %s dropped: the owner is not a Cyclone object and does not come along", ref.Kind, ref.Name))
		}
	}
	for _, f := range obj.GetFinalizers() {
		if !strings.Contains(f, "cyclone.dev") {
			dropped = append(dropped, fmt.Sprintf("finalizer %s dropped: whatever set it does not run under gyre", f))
		}
	}
	return out, dropped
}

// keep returns m without the keys of drop, nil when nothing is left.
func keep(m map[string]string, drop map[string]bool) map[string]string {
	var out map[string]string
	for k, v := range m {
		if drop[k] {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}
