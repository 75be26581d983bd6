package reconciler

import (
	"strings"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/render"
)

// ReasonRenderWarning: a target rendered and is applied, but something in
// it will fail at run time under the Tenant's settings, such as an image
// build below podSecurity: privileged.
const ReasonRenderWarning = "RenderWarning"

// warnRender records a rendered target's warnings as one Warning event:
// they stop nothing, so the status stays Ready and the event is where a
// user finds out before the run fails.
func (r *TenantReconciler) warnRender(t *gyrev1alpha1.Tenant, res *render.Result) {
	if len(res.Warnings) == 0 || len(res.Errors) > 0 {
		return
	}
	lines := make([]string, len(res.Warnings))
	for i, w := range res.Warnings {
		lines[i] = w.Error()
	}
	r.event(t, eventWarning, ReasonRenderWarning, "Target %s: %s", res.Target.Cluster, strings.Join(lines, "; "))
}
