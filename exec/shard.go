package exec

import (
	"context"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gyreops/gyre/internal/shard"
)

// A run is handled by the replicas of its Tenant's shard only
// (Config.Shard, gyre controller --shard). The manager caches only the
// shard's Tenants, so a Tenant relabelled into this shard arrives as a
// creation, and one relabelled out of it as a deletion: the engine's
// Tenant watch (runsOfTenant) enqueues the Tenant's unfinished runs on
// both, and this replica takes them over or lets them go.
//
// A run is never executed twice while two shards' caches disagree for a
// moment about a moved Tenant: every status write is locked to the
// resourceVersion it read (see write.go), so of two engines acting on the
// same run one write fails with a conflict and that engine reads the run
// again; and a stage attempt's Pod has a name fixed by run, stage and
// attempt (convention.PodName), so a second creation fails with
// AlreadyExists and is adopted, never duplicated. Overlap collides; it
// does not duplicate.

// inShard reports whether the run req is this replica's to execute. A run
// that is not forgets what the engine kept of it in memory: it may come
// back with its Tenant, and by then another shard has moved it on.
func (r *Engine) inShard(ctx context.Context, req types.NamespacedName) (bool, error) {
	ours, err := shard.Namespaces{Shard: r.cfg.Shard, Cache: r.client, Live: r.live}.Owns(ctx, req.Namespace)
	if err != nil || ours {
		return ours, err
	}
	r.written.Delete(req)
	r.running.Delete(req)
	r.unreported.Delete(req)
	r.ending.Delete(req)
	r.inProgress.remove(req)
	r.load.forget(req)
	r.swept.Delete(req)
	r.expected.forgetRun(req)
	return false, nil
}
