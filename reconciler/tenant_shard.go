package reconciler

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// ReasonRepositoryInOtherShard: the Tenant's Repository is labelled for
// another shard than the Tenant. Artifacts live on the replicas of the
// Repository's shard, so the Tenant's shard has none to render until
// both carry the same convention.ShardLabel.
const ReasonRepositoryInOtherShard = "RepositoryInOtherShard"

// repositoryMissing is the Tenant-wide outcome of a Repository the
// manager's cache does not have. The cache holds only this shard's
// Repositories, so the Repository is read live: one labelled for another
// shard is a mistake only a label change fixes, and is said so at once
// instead of waiting for an artifact that never comes here.
func (r *TenantReconciler) repositoryMissing(ctx context.Context, t *gyrev1alpha1.Tenant) (*targetOutcome, error) {
	name := t.Spec.RepositoryRef.Name
	repo := &gyrev1alpha1.Repository{}
	if err := r.live.Get(ctx, client.ObjectKey{Name: name}, repo); err != nil {
		if apierrors.IsNotFound(err) {
			return waiting(fmt.Sprintf("Repository %s not found", name)), nil
		}
		return nil, fmt.Errorf("get repository %s: %w", name, err)
	}
	want, got := shardName(t.Labels), shardName(repo.Labels)
	if want == got {
		// Moved into this shard a moment ago; the cache catches up.
		return waiting(fmt.Sprintf("Repository %s not yet in this replica's cache", name)), nil
	}
	return &targetOutcome{phase: phaseApplyFailed, reason: ReasonRepositoryInOtherShard, message: fmt.Sprintf(
		"Repository %s is in shard %s but Tenant %s is in shard %s: a Tenant renders only from a Repository of its own shard; give both the same %s label",
		name, got, t.Name, want, convention.ShardLabel)}, nil
}

// shardName describes the shard an object's labels put it in.
func shardName(labels map[string]string) string {
	if v, ok := labels[convention.ShardLabel]; ok {
		return fmt.Sprintf("%q", v)
	}
	return "(none)"
}
