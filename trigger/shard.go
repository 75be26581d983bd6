package trigger

import (
	"context"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/shard"
)

// Cron triggers fire on the replicas of their Tenant's shard only. The
// manager caches only the shard's Tenants, so a Tenant relabelled into
// the shard arrives as a creation and its triggers are enqueued
// (triggersOfTenant); one relabelled away leaves as a deletion, and its
// triggers are skipped from then on. While two shards' caches disagree
// for a moment, both may reconcile a trigger: the trigger's status ledger
// is written with an optimistic lock, so a scheduled time still starts
// one run.
//
// The webhook server is not sharded: it only creates a run, which is
// idempotent per SCM event, and the run then executes in its Tenant's
// shard like any other. Any replica's webhook server may take an event.

// inShard reports whether the triggers of namespace ns fire here.
func (r *CronReconciler) inShard(ctx context.Context, ns string) (bool, error) {
	return shard.Namespaces{Shard: r.Shard, Cache: r.Client, Live: r.APIReader}.Owns(ctx, ns)
}

// triggersOfTenant enqueues the cron triggers in a Tenant's namespace.
func (r *CronReconciler) triggersOfTenant(ctx context.Context, o client.Object) []reconcile.Request {
	var list cyclonev1alpha1.WorkflowTriggerList
	if err := r.Client.List(ctx, &list, client.InNamespace(convention.Namespace(o.GetName()))); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the triggers of a tenant", "Tenant", klog.KObj(o))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if t := &list.Items[i]; t.Spec.Type == cyclonev1alpha1.TriggerTypeCron {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(t)})
		}
	}
	return reqs
}

// shardChanged lets through the Tenant events that can move its triggers
// to or from this replica: the Tenant entering or leaving the shard's
// cache, and a change of its shard label, not the status the tenant
// reconciler writes all the time.
func shardChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetLabels()[convention.ShardLabel] != e.ObjectNew.GetLabels()[convention.ShardLabel]
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
