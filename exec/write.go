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
// controller does (internal/status). Restart safety rests on this, on a
// finished stage never changing again, and on names: a stage attempt's
// Pod is named after the run, the stage and the attempt, so a Pod created
// by a round whose status write was lost (a restart, a conflict, a write
// held back) is found and adopted by the next round, never created twice.
// Only a run's start that draws values for its global variables
// ("$(random:N)", "$(timenow)") is written before its first Pod: every
// Pod must see the same values. Any other start is derived again, the
// same, by every round until it is written with the first stages.
//
// A reconcile writes the status once at most: progress computes the whole
// round, creates its Pods, then writes, or holds the write back while the
// run is in progress (holdBack), for at most reportDelay, so that
// stages that follow one another quickly share one write. The run's end
// is held back the same way while its GC Pod runs (foldGC), for at most
// reportDelay from the end, so that a quick GC is written with the
// end; the end is derived again, the same, by every round until then. It
// writes more than once only where a later step must follow a recorded
// one: the drawn values of the run's start before its first Pod, a Pod
// refused at the start, a delegation request recorded before it is sent,
// the end with the GC Running before notifications are sent or when the
// GC Pod is slow.
//
// The finalizer is written only when the run lacks it: runs that gyre's
// triggers create carry it from their creation.

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
