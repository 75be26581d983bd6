package tenants

import (
	"context"
	"slices"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
)

// Provisioned remembers, for each Tenant, what Provision made for its
// generation, so that a check of a provisioned Tenant costs a look at the
// cache for each object, not building, stamping and copying them all
// again: at hundreds of Tenants, that was a third of a full check with
// nothing to do. The zero value is ready to use.
type Provisioned struct {
	plans sync.Map // types.UID → *plan
}

// plan is what Provision makes of one generation of a Tenant on the
// control cluster.
type plan struct {
	generation int64
	// wants are the objects, as stamped.
	wants []apply.Want
	// absent are the objects Provision deletes as stale, by kind and key.
	absent []apply.Want
}

// Current reports whether live shows everything Provision would make of
// t as Provision last made it, and nothing it would delete: Provision
// would then write nothing. It sends no request. It is false for a
// generation not remembered, and for a Tenant with a target on an
// execution cluster, whose objects live does not hold.
func (p *Provisioned) Current(ctx context.Context, live client.Reader, t *gyrev1alpha1.Tenant) bool {
	v, ok := p.plans.Load(t.UID)
	if !ok || live == nil || v.(*plan).generation != t.Generation || !controlOnly(t) {
		return false
	}
	pl := v.(*plan)
	a := &apply.Applier{Live: live, Owner: ssa.Owner{Field: convention.FieldManager, Group: convention.FieldManagerGroup}}
	return a.CurrentWants(ctx, pl.wants) && a.Absent(ctx, pl.absent)
}

// Remember notes that Provision made t's generation without an error.
// Of a Tenant with a target on an execution cluster there is nothing to
// remember: Current could not use it.
func (p *Provisioned) Remember(t *gyrev1alpha1.Tenant) {
	if !controlOnly(t) {
		p.Forget(t.UID)
		return
	}
	worker, err := WorkerObjects(t)
	if err != nil {
		p.Forget(t.UID)
		return
	}
	pl := &plan{generation: t.Generation}
	for _, o := range append(ControlObjects(t), worker...) {
		if err := apply.Stamp(o); err != nil {
			p.Forget(t.UID)
			return
		}
		pl.wants = append(pl.wants, apply.WantOf(o))
	}
	// What provisionWorker deletes as stale, named as deleteStale names it.
	stale := func(gvk schema.GroupVersionKind, name string) apply.Want {
		return apply.Want{GVK: gvk, Key: client.ObjectKey{Namespace: convention.WorkerNamespace(t.Name), Name: name}}
	}
	if len(t.Spec.Quota) == 0 {
		pl.absent = append(pl.absent, stale(corev1.SchemeGroupVersion.WithKind("ResourceQuota"), QuotaName))
	}
	if len(workerRules(t)) == 0 {
		pl.absent = append(pl.absent,
			stale(rbacv1.SchemeGroupVersion.WithKind("Role"), convention.WorkerServiceAccount),
			stale(rbacv1.SchemeGroupVersion.WithKind("RoleBinding"), convention.WorkerServiceAccount))
	}
	p.plans.Store(t.UID, pl)
}

// controlOnly reports whether every target of t runs on the control
// cluster.
func controlOnly(t *gyrev1alpha1.Tenant) bool {
	return slices.Equal(Clusters(t), []string{ControlCluster})
}

// Forget drops what was remembered of the Tenant with uid.
func (p *Provisioned) Forget(uid types.UID) { p.plans.Delete(uid) }
