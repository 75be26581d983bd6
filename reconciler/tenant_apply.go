package reconciler

import (
	"context"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/tenants"
)

const (
	eventNormal  = corev1.EventTypeNormal
	eventWarning = corev1.EventTypeWarning
)

// applier returns the server-side apply engine of the objects. A
// WorkflowRun starts a run when it is created, which deleting it again
// would not take back, so it is created last.
func (r *TenantReconciler) applier() *apply.Applier {
	return &apply.Applier{
		Client: r.Applier, Live: r.watches.cache, Concurrency: r.ApplyConcurrency,
		Owner:      ssa.Owner{Field: convention.FieldManager, Group: convention.FieldManagerGroup},
		CreateLast: isRun,
	}
}

// isRun reports whether o is a WorkflowRun.
func isRun(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == cyclonev1alpha1.GroupVersion.Group && gvk.Kind == "WorkflowRun"
}

// apply applies every target, prunes what left it, and deletes the
// inventories of targets the Tenant no longer lists.
func (r *TenantReconciler) apply(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	var kinds []*unstructured.Unstructured
	for _, ts := range s.targets {
		if !ts.remembered { // applied before, so watched already
			kinds = append(kinds, ts.objects...)
		}
	}
	// Watched before they are applied: the watch's cache is what lets
	// the applier skip unchanged objects, and no change may slip by
	// between the apply and the watch.
	if err := r.watches.ensure(kinds); err != nil {
		return ctrl.Result{}, fmt.Errorf("watch applied kinds: %w", err)
	}
	// Targets are applied at once, so one slow target does not hold up
	// the others.
	statuses := make([]gyrev1alpha1.TargetStatus, len(s.targets))
	var eg errgroup.Group
	for i, ts := range s.targets {
		old := targetStatus(t, ts.target.Cluster)
		// A full check of an unchanged target keeps its status as it is:
		// there is nothing to copy, and nothing to wait for that would
		// call for a goroutine of its own.
		if !s.driftOnly && r.unchanged(ctx, s, ts, old) {
			statuses[i] = *old
			continue
		}
		statuses[i] = gyrev1alpha1.TargetStatus{Cluster: ts.target.Cluster}
		if old != nil {
			statuses[i] = *old.DeepCopy()
		}
		tctx := ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("target", ts.target.Cluster))
		eg.Go(func() error {
			if s.driftOnly {
				r.correctDrift(tctx, s, ts, &statuses[i])
			} else {
				r.applyTarget(tctx, s, ts, &statuses[i])
			}
			return nil
		})
	}
	_ = eg.Wait() // failures are in the statuses and s.errs
	applied := map[string]*memoTarget{}
	if !s.driftOnly {
		for _, ts := range s.targets {
			if ts.memo == nil {
				// It did not render: nothing is remembered, and the
				// next check renders again.
				applied = nil
				break
			}
			applied[ts.target.Cluster] = ts.memo
		}
	}
	if !s.driftOnly {
		for _, old := range t.Status.Targets {
			if listed(s.targets, old.Cluster) {
				continue
			}
			if err := r.deleteInventory(ctx, t, old); err != nil {
				// Keep the entry, and with it the inventory, to retry.
				setConditions(&old.Conditions, targetConditions(targetOutcome{phase: phaseApplyFailed, message: err.Error()}, t.Generation))
				statuses = append(statuses, old)
				s.fail(err)
			}
		}
	}
	t.Status.Targets = statuses
	if !s.driftOnly && applied != nil && allTargetsApplied(t, s.revision) {
		r.drift.remember(t.Name, t.Generation, s.artifact, r.Clock.Now(), applied)
	}
	return ctrl.Result{}, nil
}

// applyTarget applies one target's objects and prunes what left it.
// A target that did not render, or whose prune would be massive, applies
// nothing and keeps its inventory.
func (r *TenantReconciler) applyTarget(ctx context.Context, s *tenantScope, ts *targetScope, st *gyrev1alpha1.TargetStatus) {
	t, name := s.tenant, ts.target.Cluster
	st.LastAttemptedRevision = s.revision
	if ts.renderErr != nil {
		msg := fmt.Sprintf("revision %s does not render: %v", s.revision, ts.renderErr)
		setConditions(&st.Conditions, targetConditions(targetOutcome{phase: phaseRenderFailed, message: msg}, t.Generation))
		r.event(t, eventWarning, ReasonRenderFailed, "Target %s: %s", name, msg)
		return
	}
	if ts.remembered && ts.memo != nil {
		// Not unchanged: the remembered objects are applied again.
		objs, err := ts.memo.objects()
		if err != nil {
			setConditions(&st.Conditions, targetConditions(targetOutcome{phase: phaseApplyFailed, message: err.Error()}, t.Generation))
			s.fail(err)
			return
		}
		ts.objects, ts.encoded = objs, ts.memo.bodies(objs)
	}
	next := newInventory(ts.objects)
	stale := staleEntries(st.Inventory, next)
	prune := t.Spec.Prune == nil || *t.Spec.Prune
	total := len(inventoryEntries(st.Inventory))
	if prune && massPrune(len(stale), total) && t.Annotations[gyrev1alpha1.AllowMassPruneAnnotation] != s.revision {
		msg := fmt.Sprintf("revision %s would delete %d of the target's %d objects, so nothing was applied; annotate the Tenant %s=%q to allow it",
			s.revision, len(stale), total, gyrev1alpha1.AllowMassPruneAnnotation, s.revision)
		setConditions(&st.Conditions, targetConditions(targetOutcome{phase: phasePruneGuard, message: msg}, t.Generation))
		r.event(t, eventWarning, ReasonPruneGuard, "Target %s: %s", name, msg)
		return
	}

	actx, cancel := context.WithTimeout(ctx, timeout(t))
	defer cancel()
	if err := r.relabelLegacy(actx, s.others, t, name, ts.objects, st.Inventory); err != nil {
		r.failTarget(s, st, name, fmt.Errorf("apply revision %s: %w", s.revision, err))
		return
	}
	// Nothing of the target is applied while it would take over an
	// object someone else made.
	if err := checkAdoption(actx, s.others, t, ts.objects, st.Inventory); err != nil {
		r.failTarget(s, st, name, fmt.Errorf("apply revision %s: %w", s.revision, err))
		return
	}
	plan, err := planRuns(ts.objects, st, sourceDir(ts.target))
	if err != nil {
		r.failTarget(s, st, name, fmt.Errorf("apply revision %s: %w", s.revision, err))
		return
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Applying objects", "count", len(plan.apply))
	applier := r.applier()
	applier.Encoded = ts.encoded
	cs, err := applier.Apply(actx, plan.apply)
	st.StartedRuns = plan.started(cs, err)
	if written := changed(cs); len(written) > 0 {
		r.metrics.applied.WithLabelValues(t.Name, name).Add(float64(len(written)))
		ctrl.LoggerFrom(ctx).Info("Applied objects", "written", len(written))
		r.event(t, eventNormal, "Applied", "Target %s: revision %s: %s", name, s.revision, list(written))
	}
	if err != nil {
		// What was created before the failure must stay prunable. A
		// run not known to be created stays out: listed, it would count
		// as started and never be created.
		st.Inventory = mergeInventories(st.Inventory, withoutUnstarted(next, plan, st.StartedRuns))
		r.failTarget(s, st, name, fmt.Errorf("apply revision %s: %w", s.revision, err))
		return
	}
	st.Inventory = next
	if prune && len(stale) > 0 {
		survivors, err := r.prune(actx, t, name, stale)
		st.Inventory = mergeInventories(next, &gyrev1alpha1.Inventory{Entries: survivors})
		if err != nil {
			r.failTarget(s, st, name, fmt.Errorf("prune: %w", err))
			return
		}
	}
	st.LastAppliedRevision = s.revision
	r.warnRuns(t, st, name, plan.notes)
	setConditions(&st.Conditions, targetConditions(targetOutcome{phase: phaseApplied, revision: s.revision, objects: len(st.Inventory.Entries), notes: plan.notes}, t.Generation))
}

// unchanged reports whether a target is what the last full reconcile
// applied, Ready at the revision, with every object still as gyre applied
// it: a full check would then find the same inventory and conditions and
// write nothing, and stops before building them again, which was most of
// the cost of checking an unchanged Tenant. It sends no request.
func (r *TenantReconciler) unchanged(ctx context.Context, s *tenantScope, ts *targetScope, old *gyrev1alpha1.TargetStatus) bool {
	return ts.remembered && ts.memo != nil && ts.renderErr == nil && old != nil &&
		old.LastAttemptedRevision == s.revision &&
		len(inventoryEntries(old.Inventory)) == len(ts.memo.wants) &&
		r.applier().CurrentWants(ctx, ts.memo.wants)
}

// correctDrift re-applies the objects of a target that changed in the
// cluster since the last full reconcile; the applier skips those whose
// change did not touch what gyre applies.
func (r *TenantReconciler) correctDrift(ctx context.Context, s *tenantScope, ts *targetScope, st *gyrev1alpha1.TargetStatus) {
	objs := withoutRuns(ts.objects)
	if len(objs) == 0 {
		return
	}
	t, name := s.tenant, ts.target.Cluster
	actx, cancel := context.WithTimeout(ctx, timeout(t))
	defer cancel()
	cs, err := r.applier().Apply(actx, objs)
	if written := changed(cs); len(written) > 0 {
		r.metrics.drift.WithLabelValues(t.Name, name).Add(float64(len(written)))
		ctrl.LoggerFrom(ctx).Info("Corrected drift", "objects", written)
		r.event(t, eventNormal, "DriftCorrected", "Target %s: put back %s", name, list(written))
	}
	if err != nil {
		r.drift.forget(t.Name) // the next reconcile checks everything
		r.failTarget(s, st, name, fmt.Errorf("correct drift: %w", err))
	}
}

// failTarget marks a target failed for a reason worth retrying.
func (r *TenantReconciler) failTarget(s *tenantScope, st *gyrev1alpha1.TargetStatus, name string, err error) {
	setConditions(&st.Conditions, targetConditions(targetOutcome{phase: phaseApplyFailed, message: err.Error()}, s.tenant.Generation))
	r.event(s.tenant, eventWarning, ReasonApplyFailed, "Target %s: %v", name, err)
	s.fail(fmt.Errorf("tenant %q cluster %q: %w", s.tenant.Name, name, err))
}

// prune deletes the stale objects of a target, in reverse apply order,
// when their live labels still name the target and they do not opt out.
// It returns the entries it failed to delete, which stay in the inventory
// to be retried; objects it skipped are no longer gyre's and leave it.
func (r *TenantReconciler) prune(ctx context.Context, t *gyrev1alpha1.Tenant, target string, stale []gyrev1alpha1.InventoryEntry) ([]gyrev1alpha1.InventoryEntry, error) {
	objs := make([]*unstructured.Unstructured, 0, len(stale))
	byID := map[string]gyrev1alpha1.InventoryEntry{}
	for _, e := range stale {
		o, err := entryObject(e)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
		byID[e.ID] = e
	}
	cs, err := r.applier().Delete(ctx, objs, apply.DeleteOptions{
		Inclusions: map[string]string{convention.TenantLabel: t.Name, convention.TargetLabel: target},
		Exclusions: map[string]string{convention.PruneAnnotation: convention.PruneDisabled},
	})
	var pruned []string
	done := map[string]bool{}
	for _, e := range cs.Entries {
		id := inventoryID(e.ObjMetadata.Namespace, e.ObjMetadata.Name, e.ObjMetadata.GroupKind.Group, e.ObjMetadata.GroupKind.Kind)
		switch e.Action {
		case ssa.DeletedAction:
			pruned = append(pruned, e.Subject)
			done[id] = true
		case ssa.SkippedAction:
			done[id] = true
		}
	}
	var survivors []gyrev1alpha1.InventoryEntry
	for id, e := range byID {
		if !done[id] {
			survivors = append(survivors, e)
		}
	}
	if len(pruned) > 0 {
		r.metrics.pruned.WithLabelValues(t.Name, target).Add(float64(len(pruned)))
		ctrl.LoggerFrom(ctx).Info("Pruned objects", "objects", pruned)
		r.event(t, eventNormal, "Pruned", "Target %s: deleted %s", target, list(pruned))
	}
	return survivors, err
}

// deleteInventory deletes every object of a target's inventory that is
// still the target's.
func (r *TenantReconciler) deleteInventory(ctx context.Context, t *gyrev1alpha1.Tenant, st gyrev1alpha1.TargetStatus) error {
	entries := inventoryEntries(st.Inventory)
	if len(entries) == 0 {
		return nil
	}
	if err := r.relabelLegacy(ctx, newLiveOthers(r.live, t.Name), t, st.Cluster, nil, st.Inventory); err != nil {
		return fmt.Errorf("delete inventory of tenant %q cluster %q: %w", t.Name, st.Cluster, err)
	}
	survivors, err := r.prune(ctx, t, st.Cluster, entries)
	if err == nil && len(survivors) > 0 {
		err = fmt.Errorf("%d objects not deleted", len(survivors))
	}
	if err != nil {
		return fmt.Errorf("delete inventory of tenant %q cluster %q: %w", t.Name, st.Cluster, err)
	}
	return nil
}

// finalize removes a deleted Tenant's objects and namespaces, unless its
// deletion policy orphans them, and then lets it go.
func (r *TenantReconciler) finalize(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	if !controllerutil.ContainsFinalizer(t, convention.TenantFinalizer) {
		return ctrl.Result{}, nil
	}
	if t.Spec.DeletionPolicy != gyrev1alpha1.DeletionPolicyOrphan {
		for _, st := range t.Status.Targets {
			if err := r.deleteInventory(ctx, t, st); err != nil {
				return ctrl.Result{}, err
			}
		}
		if err := tenants.Remove(ctx, r.Clusters, t); err != nil {
			return ctrl.Result{}, fmt.Errorf("remove tenant %q: %w", t.Name, err)
		}
		ctrl.LoggerFrom(ctx).Info("Deleted tenant objects and namespaces")
	}
	controllerutil.RemoveFinalizer(t, convention.TenantFinalizer)
	return ctrl.Result{}, nil
}

// event records one event on a Tenant.
func (r *TenantReconciler) event(t *gyrev1alpha1.Tenant, typ, reason, format string, args ...any) {
	note := fmt.Sprintf(format, args...)
	if len(note) > 1000 { // events.k8s.io caps a note at 1 kB
		note = note[:997] + "..."
	}
	r.Recorder.Eventf(t, nil, typ, reason, reason, "%s", note)
}

// changed lists the objects a change set created or changed.
func changed(cs *ssa.ChangeSet) []string {
	if cs == nil {
		return nil
	}
	var out []string
	for _, e := range cs.Entries {
		if e.Action == ssa.CreatedAction || e.Action == ssa.ConfiguredAction {
			out = append(out, e.Subject+" "+e.Action.String())
		}
	}
	return out
}

// list formats at most ten items for an event.
func list(items []string) string {
	if len(items) <= 10 {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:10], ", "), len(items)-10)
}

func listed(targets []*targetScope, cluster string) bool {
	for _, ts := range targets {
		if ts.target.Cluster == cluster {
			return true
		}
	}
	return false
}
