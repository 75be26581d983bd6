package reconciler

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/record"
	"github.com/gyreops/gyre/render"
	"github.com/gyreops/gyre/tenants"
)

// repositoryRefIndex indexes Tenants by spec.repositoryRef.name.
const repositoryRefIndex = "spec.repositoryRef.name"

// SetupWithManager fills the unset fields with their defaults and
// registers the reconciler: Tenants are reconciled when their spec or
// request annotations change, when their Repository's revision changes,
// and when an object they applied is changed or deleted in the cluster.
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Artifacts == nil {
		return errors.New("tenant reconciler: Artifacts is required")
	}
	if err := r.defaults(mgr); err != nil {
		return err
	}
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &gyrev1alpha1.Tenant{}, repositoryRefIndex, func(o client.Object) []string {
		return []string{o.(*gyrev1alpha1.Tenant).Spec.RepositoryRef.Name}
	}); err != nil {
		return fmt.Errorf("index tenants by repository: %w", err)
	}

	// Applied objects are watched through a cache of their own that holds
	// only gyre's objects' metadata, whatever the manager caches. Its
	// readers only compare what they read, so reads share the cached
	// objects instead of copying them: at 20,000 objects the copies were
	// a quarter of a full check's CPU.
	managed, err := labels.NewRequirement(convention.TenantLabel, selection.Exists, nil)
	if err != nil {
		return err
	}
	objCache, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:               mgr.GetScheme(),
		Mapper:               mgr.GetRESTMapper(),
		DefaultLabelSelector: labels.NewSelector().Add(*managed),
		DefaultTransform:     dropFieldSets,
		// Never write to an object read from it.
		DefaultUnsafeDisableDeepCopy: ptr.To(true),
	})
	if err != nil {
		return fmt.Errorf("tenant object cache: %w", err)
	}
	if err := mgr.Add(objCache); err != nil {
		return err
	}

	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&gyrev1alpha1.Tenant{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{},
			annotationChanged(gyrev1alpha1.ReconcileRequestAnnotation, gyrev1alpha1.AllowMassPruneAnnotation),
		))).
		Watches(&gyrev1alpha1.Repository{},
			handler.EnqueueRequestsFromMapFunc(r.tenantsOfRepository),
			builder.WithPredicates(revisionChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("tenant").
		Build(r)
	if err != nil {
		return err
	}
	r.watches = &kindWatches{cache: apply.NewMetadataCache(objCache), ctrl: c, drift: r.drift, watched: map[schema.GroupVersionKind]bool{}}
	// What provisioning writes on the control cluster is watched like
	// what the tenants apply: a change to it is put back at once.
	return r.watches.ensureKinds(tenants.Kinds)
}

func (r *TenantReconciler) defaults(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Applier == nil {
		c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("tenant reconciler: applier client: %w", err)
		}
		r.Applier = c
	}
	if r.Clusters == nil {
		control := mgr.GetConfig()
		r.Clusters = &tenants.Clients{Control: r.Applier, Reader: mgr.GetAPIReader(),
			// Execution clusters get the control cluster's rate limits
			// (--kube-api-qps), not client-go's 5 requests a second.
			WrapConfig: func(cfg *rest.Config) { cfg.QPS, cfg.Burst = control.QPS, control.Burst }}
	}
	if r.Renderer == nil {
		r.Renderer = render.NewRenderer()
	}
	if r.Recorder == nil {
		r.Recorder = record.Distinct(mgr.GetEventRecorder("gyre-tenant"))
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.ApplyConcurrency <= 0 {
		r.ApplyConcurrency = 10
	}
	if r.MaxConcurrentReconciles <= 0 {
		r.MaxConcurrentReconciles = 8
	}
	r.live = mgr.GetAPIReader()
	r.metrics = newTenantMetrics()
	r.drift = newDriftTracker()
	return nil
}

// tenantsOfRepository enqueues the Tenants that render from a Repository.
func (r *TenantReconciler) tenantsOfRepository(ctx context.Context, o client.Object) []reconcile.Request {
	var list gyrev1alpha1.TenantList
	if err := r.Client.List(ctx, &list, client.MatchingFields{repositoryRefIndex: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing tenants of repository failed", "repository", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i, t := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: t.Name}}
	}
	return reqs
}

// revisionChanged lets through Repositories whose artifact revision
// changed, appeared or went.
func revisionChanged() predicate.Funcs {
	// A changed ignore checks the same commit out anew: same revision,
	// new digest.
	rev := func(o client.Object) string {
		if repo, ok := o.(*gyrev1alpha1.Repository); ok && repo.Status.Artifact != nil {
			return repo.Status.Artifact.Revision + " " + repo.Status.Artifact.Digest
		}
		return ""
	}
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool { return rev(e.ObjectOld) != rev(e.ObjectNew) },
	}
}

// annotationChanged lets through updates that change any of keys.
func annotationChanged(keys ...string) predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			for _, k := range keys {
				if e.ObjectOld.GetAnnotations()[k] != e.ObjectNew.GetAnnotations()[k] {
					return true
				}
			}
			return false
		},
	}
}

// dropFieldSets empties the field sets of a cached object's managed
// fields: who wrote it and when is all that telling gyre's writes from
// others' takes (apply.LastWriteIsOurs), and the sets are most of an
// object's metadata, 20,000 objects' worth of memory.
func dropFieldSets(obj any) (any, error) {
	if o, ok := obj.(client.Object); ok {
		fields := o.GetManagedFields()
		for i := range fields {
			fields[i].FieldsV1 = nil
		}
	}
	return obj, nil
}
