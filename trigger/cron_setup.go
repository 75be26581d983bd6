package trigger

import (
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/record"
)

// SetupWithManager registers the reconciler with mgr, filling the fields
// left unset from it: the manager's client, API reader and event recorder,
// and the real clock.
func (r *CronReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = record.Distinct(mgr.GetEventRecorder("gyre-trigger"))
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	isCron := predicate.NewPredicateFuncs(func(o client.Object) bool {
		t, ok := o.(*cyclonev1alpha1.WorkflowTrigger)
		return ok && t.Spec.Type == cyclonev1alpha1.TriggerTypeCron
	})
	// Only spec changes matter: the reconciler's own status writes would
	// otherwise wake it once more for nothing. Scheduled times come from
	// RequeueAfter.
	return ctrl.NewControllerManagedBy(mgr).
		Named("workflowtrigger-cron").
		For(&cyclonev1alpha1.WorkflowTrigger{}, builder.WithPredicates(isCron, predicate.GenerationChangedPredicate{})).
		Watches(&gyrev1alpha1.Tenant{}, handler.EnqueueRequestsFromMapFunc(r.triggersOfTenant), builder.WithPredicates(shardChanged())).
		Complete(r)
}
