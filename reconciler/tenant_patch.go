package reconciler

import (
	"context"
	"reflect"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/status"
)

// tenantPatcher writes what a reconcile changed of a Tenant: its metadata
// (the finalizer) and its status, one JSON merge patch each, and nothing
// when nothing changed. gyre is the only writer of a Tenant's status, so
// the conditions need no per-condition merging: a Tenant's status is
// large (every target's inventory), and each request that rewrites it
// costs the API server several times an object's apply. Patches carry the
// resourceVersion they were computed from: a reconcile that read a Tenant
// older than the last write gets a conflict and runs again, instead of
// sending a diff against stale fields.
type tenantPatcher struct {
	c client.Client
	// before is the Tenant as last read or written.
	before *gyrev1alpha1.Tenant
	// wrote is told the resourceVersion of each write.
	wrote func(resourceVersion string)
}

func newTenantPatcher(c client.Client, t *gyrev1alpha1.Tenant, wrote func(string)) *tenantPatcher {
	return &tenantPatcher{c: c, before: t.DeepCopy(), wrote: wrote}
}

// patch sends t's changes since the last read or patch.
func (p *tenantPatcher) patch(ctx context.Context, t *gyrev1alpha1.Tenant) error {
	lock := client.MergeFromWithOptimisticLock{}
	if !metaEqual(p.before.ObjectMeta, t.ObjectMeta) {
		// The status is left out: the main resource ignores it.
		obj := t.DeepCopy()
		obj.Status = p.before.Status
		if err := p.c.Patch(ctx, obj, client.MergeFromWithOptions(p.before, lock), client.FieldOwner(convention.FieldManager)); err != nil {
			return err
		}
		t.ObjectMeta = obj.ObjectMeta
		p.before.ObjectMeta = *obj.ObjectMeta.DeepCopy()
		p.wrote(t.ResourceVersion)
	}
	if !statusEqual(&p.before.Status, &t.Status) {
		sent := t.Status.DeepCopy()
		patched, err := status.Patch(ctx, p.c, p.before, t, client.FieldOwner(convention.FieldManager))
		if err != nil {
			return err
		}
		// What was sent stays what the reconcile holds, whatever the
		// response decoded into t.
		t.Status = *sent
		p.before = t.DeepCopy()
		if patched {
			p.wrote(t.ResourceVersion)
		}
	}
	return nil
}

// metaEqual reports whether a reconcile left a Tenant's metadata as it
// was. Managed fields are left out: a reconcile never changes them, and
// comparing their raw field sets byte by byte through reflection was
// most of the cost of a full check of an unchanged Tenant.
func metaEqual(a, b metav1.ObjectMeta) bool {
	a.ManagedFields, b.ManagedFields = nil, nil
	return apiequality.Semantic.DeepEqual(a, b)
}

// statusEqual reports whether a reconcile left a Tenant's status as it
// was. An unchanged status is identical in memory, which the standard
// library's comparison finds with no allocation; only a status that
// differs there pays for the semantic comparison (nil and empty alike,
// times by instant).
func statusEqual(a, b *gyrev1alpha1.TenantStatus) bool {
	return reflect.DeepEqual(a, b) || apiequality.Semantic.DeepEqual(a, b)
}
