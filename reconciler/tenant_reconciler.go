package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/status"
	"github.com/gyreops/gyre/render"
	"github.com/gyreops/gyre/tenants"
)

// Defaults of a Tenant's spec when the API server did not fill them.
const (
	defaultInterval = 5 * time.Minute
	defaultTimeout  = 5 * time.Minute
	// waitInterval is how soon a Tenant waiting for its Repository looks
	// again, besides the Repository watch.
	waitInterval = 30 * time.Second
)

// TenantReconciler makes each target of a Tenant match its Repository:
// it renders the target from the Repository's artifact, provisions the
// tenant's namespaces, applies the objects with server-side apply, prunes
// what left Git and puts back what drifted. Build it with its exported
// fields and call SetupWithManager; unset fields take the defaults their
// comments give.
type TenantReconciler struct {
	// Artifacts finds Repositories' checked-out files. Required.
	Artifacts Artifacts
	// Renderer renders targets. Default render.NewRenderer().
	Renderer Renderer
	// Client reads Tenants and Repositories and patches Tenants. Default
	// the manager's client.
	Client client.Client
	// Applier applies, diffs and deletes the rendered objects. It should
	// read the API server directly so that drift is judged on live
	// objects. Default an uncached client of the manager's config.
	Applier client.Client
	// Clusters reaches the clusters tenants are provisioned on. Default
	// Applier for the control cluster and the manager's APIReader for
	// ExecutionClusters and their Secrets.
	Clusters *tenants.Clients
	// Recorder records events on Tenants. Default the manager's.
	Recorder events.EventRecorder
	// Clock tells the time. Default the real clock.
	Clock clock.Clock
	// ApplyConcurrency is how many objects of a target are diffed and
	// applied at once. Default 10.
	ApplyConcurrency int
	// MaxConcurrentReconciles is how many Tenants are reconciled at once.
	// Default 8.
	MaxConcurrentReconciles int

	metrics *tenantMetrics
	drift   *driftTracker
	watches *kindWatches
	// provisioned spares a check of a provisioned Tenant building its
	// namespaces, PVC and RBAC again.
	provisioned tenants.Provisioned
	// migrated remembers the targets checked for legacy tenant labels.
	migrated relabeled
	// live reads a Tenant from the API server when the cache has not
	// caught up with the reconciler's own last write of it.
	live client.Reader
	// written maps each Tenant to the resourceVersion of the reconciler's
	// last write to it. A cached Tenant with another version is older
	// than that write (or newer, from another writer) and is read live:
	// a reconcile that started from an older status would take an applied
	// revision for a new one and apply it again.
	written sync.Map // string → string
}

// tenantScope carries one reconcile's state from step to step; the
// comment of each field says which step fills it.
type tenantScope struct {
	tenant *gyrev1alpha1.Tenant
	// patcher writes what the reconcile changed of the Tenant; a
	// reconcile that changes nothing of it sends no patch.
	patcher *tenantPatcher
	// revision and dir of the Repository's artifact: fetch.
	revision, dir string
	// artifact names what was rendered: the revision, and the directory
	// it was checked out to, which changes with the Repository's ignore.
	// What the drift tracker remembers is only good for the same one.
	artifact string
	// allowRemote is the Repository's allowRemoteBases: fetch.
	allowRemote bool
	// renderLimits are the Repository's spec.limits for renders: fetch.
	renderLimits render.Limits
	// driftOnly is set by fetch when nothing but drift can have changed
	// since the last full reconcile; dirty then holds the objects to
	// re-apply by target, and nextFull when the next full check is due.
	driftOnly bool
	dirty     map[string][]*unstructured.Unstructured
	nextFull  time.Duration
	// provisionErr is a failure to provision some cluster: provision.
	provisionErr error
	// targets to apply: render.
	targets []*targetScope
	// tenantWide overrides the summary of the targets (no artifact, a
	// failed provisioning): any step.
	tenantWide *targetOutcome
	// others lists the live objects not labelled as the Tenant's, for
	// every target of this reconcile.
	others *liveOthers
	// errs are transient failures to retry with backoff: apply, whose
	// targets add to it concurrently under mu.
	mu   sync.Mutex
	errs []error
}

// fail records a failure to retry.
func (s *tenantScope) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

// targetScope is one target of a reconcile.
type targetScope struct {
	target render.Target
	// objects rendered, labelled: render.
	objects []*unstructured.Unstructured
	// renderErr names what stops the target from rendering: render.
	renderErr error
	// remembered is set when memo is what the last full reconcile
	// applied, for the same generation and artifact, and every target
	// was Ready at the revision: render. objects are then decoded from
	// memo only if the target is not current (applyTarget). Otherwise
	// memo holds the objects just rendered, to be remembered once
	// applied.
	remembered bool
	memo       *memoTarget
	// encoded gives the JSON memo holds for each of objects, which the
	// apply sends as it is.
	encoded func(*unstructured.Unstructured) []byte
}

// Reconcile brings one Tenant's targets in line with its Repository.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	start := r.Clock.Now()
	tenant := &gyrev1alpha1.Tenant{}
	if err := r.Client.Get(ctx, req.NamespacedName, tenant); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if v, ok := r.written.Load(req.Name); ok && v.(string) != tenant.ResourceVersion {
		if err := r.live.Get(ctx, req.NamespacedName, tenant); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	s := &tenantScope{tenant: tenant, others: newLiveOthers(r.live, tenant.Name),
		patcher: newTenantPatcher(r.Client, tenant, func(rv string) { r.written.Store(req.Name, rv) })}
	defer func() {
		r.metrics.duration.WithLabelValues(tenant.Name).Observe(r.Clock.Since(start).Seconds())
		if err := r.patchStatus(ctx, s); err != nil {
			retErr = errors.Join(retErr, err)
		}
		result, retErr = status.OnConflict(result, retErr)
	}()

	if !tenant.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, s)
	}
	if controllerutil.AddFinalizer(tenant, convention.TenantFinalizer) {
		// Patched before anything is applied, so nothing gyre applies
		// can outlive the Tenant unnoticed.
		if err := s.patcher.patch(ctx, tenant); err != nil {
			return ctrl.Result{}, err
		}
	}
	if tenant.Spec.Suspend {
		ctrl.LoggerFrom(ctx).V(1).Info("Reconciliation is suspended")
		return ctrl.Result{}, nil
	}
	for _, step := range []func(context.Context, *tenantScope) (ctrl.Result, error){
		r.fetch, r.provision, r.render, r.apply,
	} {
		if res, err := step(ctx, s); err != nil || !res.IsZero() {
			return res, err
		}
	}
	if err := errors.Join(append(s.errs, s.provisionErr)...); err != nil {
		return ctrl.Result{}, err
	}
	if s.driftOnly {
		return ctrl.Result{RequeueAfter: s.nextFull}, nil
	}
	return ctrl.Result{RequeueAfter: interval(tenant)}, nil
}

// fetch finds the Repository's artifact and decides whether this
// reconcile is a full one or only puts back drifted objects.
func (r *TenantReconciler) fetch(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	repo := &gyrev1alpha1.Repository{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: t.Spec.RepositoryRef.Name}, repo); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		if s.tenantWide, err = r.repositoryMissing(ctx, t); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: waitInterval}, nil
	}
	dir, err := r.Artifacts.ArtifactDir(repo)
	if errors.Is(err, ErrArtifactUnavailable) {
		s.tenantWide = waiting(err.Error())
		return ctrl.Result{RequeueAfter: waitInterval}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	s.revision, s.dir, s.allowRemote = repo.Status.Artifact.Revision, dir, repo.Spec.AllowRemoteBases
	s.renderLimits = renderLimits(repo)
	s.artifact = s.revision + " in " + dir
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("revision", s.revision))

	requested := t.Annotations[gyrev1alpha1.ReconcileRequestAnnotation]
	if requested != t.Status.LastHandledReconcileAt {
		t.Status.LastHandledReconcileAt = requested
		r.drift.forget(t.Name)
	}
	if allTargetsApplied(t, s.revision) {
		s.dirty, s.nextFull, s.driftOnly = r.drift.takeDirty(t.Name, t.Generation, s.artifact, r.Clock.Now(), interval(t))
	}
	if !s.driftOnly && !appliedRevision(t, s.revision) && attemptedAny(t) {
		// A Tenant that never attempted a revision gets its first status
		// with the outcome: at hundreds of Tenants, a progress write
		// each would cost as much as the outcome's.
		r.progress(ctx, s, fmt.Sprintf("Applying revision %s", s.revision))
	}
	return ctrl.Result{}, nil
}

// provision makes the tenant's namespaces, quota, PVC and RBAC on every
// cluster it uses. A failure is retried, but the targets are still
// applied: their objects live on the control cluster.
func (r *TenantReconciler) provision(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	if s.driftOnly {
		return ctrl.Result{}, nil
	}
	if r.provisioned.Current(ctx, r.watches.cache, s.tenant) {
		r.retire(ctx, s)
		return ctrl.Result{}, nil
	}
	res, err := tenants.Provision(ctx, r.Clusters, r.watches.cache, s.tenant)
	// A Tenant's first convergence then asks nothing of the namespaces
	// it just made: a listing per kind, each a consistent read that
	// waits for the API server's watch cache, was one of its requests
	// in 26.
	s.others.empty(res.Created...)
	if err == nil {
		r.provisioned.Remember(s.tenant)
	} else {
		r.provisioned.Forget(s.tenant.UID)
	}
	if len(res.Written) > 0 {
		ctrl.LoggerFrom(ctx).Info("Provisioned tenant", "written", res.Written)
		r.event(s.tenant, eventNormal, "Provisioned", "Provisioned %d objects: %v", len(res.Written), res.Written)
	}
	if err != nil {
		s.provisionErr = fmt.Errorf("provision tenant %q: %w", s.tenant.Name, err)
		r.event(s.tenant, eventWarning, ReasonProvisionFailed, "%v", s.provisionErr)
		if errors.Is(err, tenants.ErrNotOwned) {
			// A namespace gyre did not create may be someone else's:
			// applying into it would take it over. Retried with backoff,
			// so annotating it for adoption is noticed.
			s.tenantWide = &targetOutcome{phase: phaseApplyFailed, reason: ReasonProvisionFailed, message: s.provisionErr.Error()}
			return ctrl.Result{}, s.provisionErr
		}
	}
	r.retire(ctx, s)
	return ctrl.Result{}, nil
}

// retire removes the tenant's worker namespace from the execution
// clusters none of its targets names any longer, and keeps in the status
// those it is still on.
func (r *TenantReconciler) retire(ctx context.Context, s *tenantScope) {
	t := s.tenant
	inUse := tenants.Clusters(t)
	var on []string
	for _, name := range inUse {
		if name != tenants.ControlCluster {
			on = append(on, name)
		}
	}
	for _, name := range t.Status.ExecutionClusters {
		if slices.Contains(inUse, name) {
			continue
		}
		if err := tenants.Retire(ctx, r.Clusters, t.Name, name); err != nil {
			on = append(on, name) // to retry
			err = fmt.Errorf("remove the worker namespace of tenant %q from cluster %s: %w", t.Name, name, err)
			s.provisionErr = errors.Join(s.provisionErr, err)
			r.event(t, eventWarning, ReasonProvisionFailed, "%v", err)
			continue
		}
		ctrl.LoggerFrom(ctx).Info("Removed worker namespace", "cluster", name)
		r.event(t, eventNormal, "Retired", "Removed worker namespace %s from cluster %s, which no target names", convention.WorkerNamespace(t.Name), name)
	}
	sort.Strings(on)
	t.Status.ExecutionClusters = on
}

// render renders every target, or takes the drifted objects of the last
// full reconcile when that is all there is to do.
func (r *TenantReconciler) render(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	targets := render.TargetsForTenant(t)
	if s.driftOnly {
		for _, rt := range targets {
			s.targets = append(s.targets, &targetScope{target: rt, objects: s.dirty[rt.Cluster]})
		}
		return ctrl.Result{}, nil
	}
	if last := r.drift.rendered(t.Name, t.Generation, s.artifact); last != nil && allTargetsApplied(t, s.revision) {
		for _, rt := range targets {
			s.targets = append(s.targets, &targetScope{target: rt, memo: last[rt.Cluster], remembered: true})
		}
		return ctrl.Result{}, nil
	}
	// The revision is not stamped on the objects: a commit would then
	// rewrite every object of the tenant, not just those it changed.
	opts := render.Options{AllowRemoteBases: s.allowRemote, AllowedKinds: t.Spec.AllowedKinds, Limits: s.renderLimits}
	results := make([]*render.Result, len(targets))
	for i, rt := range targets {
		res, err := r.timedRender(ctx, s.dir, rt, opts)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("render tenant %q cluster %q: %w", t.Name, rt.Cluster, err)
		}
		results[i] = res
	}
	render.MarkConflicts(results)
	for i, res := range results {
		r.warnRender(t, res)
		ts := &targetScope{target: targets[i]}
		if err := res.Err(); err != nil {
			ts.renderErr = err
		} else {
			ts.objects = res.Objects
			// render stamped the tenant and target labels.
			for _, o := range ts.objects {
				// Stamped once here, whatever the repository says, and
				// applied as they are on every check of this revision.
				if err := apply.Stamp(o); err != nil {
					return ctrl.Result{}, err
				}
			}
			memo, err := newMemoTarget(ts.objects)
			if err != nil {
				return ctrl.Result{}, err
			}
			ts.memo, ts.encoded = memo, memo.bodies(ts.objects)
		}
		s.targets = append(s.targets, ts)
	}
	return ctrl.Result{}, nil
}

// progress patches a Reconciling condition so users can watch a long
// reconcile; it is only called when there is a new revision or spec to
// apply, never on a check that finds nothing to do.
func (r *TenantReconciler) progress(ctx context.Context, s *tenantScope, msg string) {
	setConditions(&s.tenant.Status.Conditions, targetConditions(targetOutcome{phase: phaseProgressing, message: msg}, s.tenant.Generation))
	if err := s.patcher.patch(ctx, s.tenant); err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("Patching progress failed", "error", err.Error())
	}
}

// patchStatus derives the Tenant's conditions and summary from its
// targets and patches them.
func (r *TenantReconciler) patchStatus(ctx context.Context, s *tenantScope) error {
	t := s.tenant
	if !t.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(t, convention.TenantFinalizer) {
		r.metrics.forget(t.Name)
		r.drift.forget(t.Name)
		r.provisioned.Forget(t.UID)
		return client.IgnoreNotFound(s.patcher.patch(ctx, t))
	}
	if !t.Spec.Suspend {
		t.Status.LastAppliedRevision, t.Status.Objects = summary(t.Status.Targets)
		setConditions(&t.Status.Conditions, tenantConditions(t.Status.Targets, s.tenantWide, t.Generation))
		if s.tenantWide == nil && s.provisionErr != nil {
			setConditions(&t.Status.Conditions, targetConditions(targetOutcome{phase: phaseApplyFailed, reason: ReasonProvisionFailed, message: s.provisionErr.Error()}, t.Generation))
		}
		if allTargetsApplied(t, s.revision) && s.provisionErr == nil && len(s.errs) == 0 {
			t.Status.ObservedGeneration = t.Generation
		}
	}
	return s.patcher.patch(ctx, t)
}

// waiting is the Tenant-wide outcome of waiting for the Repository.
func waiting(msg string) *targetOutcome {
	return &targetOutcome{phase: phaseProgressing, reason: ReasonArtifactUnavailable, message: msg}
}

// allTargetsApplied reports whether every target of t is Ready at
// revision, with no target missing from the status.
func allTargetsApplied(t *gyrev1alpha1.Tenant, revision string) bool {
	targets := render.TargetsForTenant(t)
	if revision == "" || len(t.Status.Targets) != len(targets) {
		return false
	}
	for _, rt := range targets {
		st := targetStatus(t, rt.Cluster)
		if st == nil || st.LastAppliedRevision != revision || st.LastAttemptedRevision != revision ||
			!isReady(st.Conditions) {
			return false
		}
	}
	return true
}

// appliedRevision reports whether every target already attempted
// revision; a reconcile that only checks for drift then shows no
// progress.
func appliedRevision(t *gyrev1alpha1.Tenant, revision string) bool {
	for _, rt := range render.TargetsForTenant(t) {
		if st := targetStatus(t, rt.Cluster); st == nil || st.LastAttemptedRevision != revision {
			return false
		}
	}
	return t.Status.ObservedGeneration == t.Generation
}

// attemptedAny reports whether some target of t attempted a revision.
func attemptedAny(t *gyrev1alpha1.Tenant) bool {
	for _, st := range t.Status.Targets {
		if st.LastAttemptedRevision != "" {
			return true
		}
	}
	return false
}

func interval(t *gyrev1alpha1.Tenant) time.Duration {
	if t.Spec.Interval != nil && t.Spec.Interval.Duration > 0 {
		return t.Spec.Interval.Duration
	}
	return defaultInterval
}

func timeout(t *gyrev1alpha1.Tenant) time.Duration {
	if t.Spec.Timeout != nil && t.Spec.Timeout.Duration > 0 {
		return t.Spec.Timeout.Duration
	}
	return defaultTimeout
}
