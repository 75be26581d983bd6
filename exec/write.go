package exec

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/status"
)

// Every write of the engine to a WorkflowRun goes through writeStatus or
// writeFinalizer. Both send a merge patch of what changed that carries the
// run's resourceVersion: a write based on an outdated run, the engine's
// own cache or a run a delegation service has reported on since, fails
// with a conflict instead of overwriting newer progress, and Reconcile
// looks at the run again after status.ConflictRequeue, as every gyre
// controller does (internal/status). Restart safety rests on this: an
// attempt is recorded before its Pod exists, and a finished stage never
// changes again.
//
// A reconcile writes the status once where it can: progress computes the
// whole round, then writes. It writes again only where a later step must
// follow a recorded one: a Pod refused after its attempt was recorded, a
// delegation request recorded before it is sent, the GC phase recorded
// before its Pod is created.

// writeStatus persists st as the run's status if it changed, and records
// the Events and metrics of the transitions it writes.
func (r *Engine) writeStatus(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, st *cyclonev1alpha1.WorkflowRunStatus) error {
	st.ObservedGeneration = run.Generation
	if equality.Semantic.DeepEqual(&run.Status, st) {
		return nil
	}
	updated := run.DeepCopy()
	updated.Status = *st
	if err := r.inject("before-status-write"); err != nil {
		return err
	}
	if _, err := status.Patch(ctx, r.client, run, updated); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	old := run.Status
	*run = *updated
	r.recordTransitions(run, &old)
	r.observeTransitions(run, &old)
	r.written.Store(client.ObjectKeyFromObject(run), run.ResourceVersion)
	r.unreported.Delete(client.ObjectKeyFromObject(run))
	return r.inject("after-status-write")
}

// writeFinalizer adds or removes (change) the engine's finalizer, and
// writes the run when that changed it.
func (r *Engine) writeFinalizer(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, change func(client.Object, string) bool) error {
	before := run.DeepCopy()
	if !change(run, convention.RunFinalizer) {
		return nil
	}
	if err := r.client.Patch(ctx, run, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	r.written.Store(client.ObjectKeyFromObject(run), run.ResourceVersion)
	return nil
}
