package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
)

// driftTracker remembers, per Tenant, what the last full reconcile applied
// and which of those objects changed in the cluster since. A reconcile
// that finds nothing new in Git re-applies only the changed objects, so
// correcting one edited object costs one diff, not one per object of the
// tenant. What it remembers is lost with the process; the first
// reconcile after a restart is a full one.
type driftTracker struct {
	mu      sync.Mutex
	tenants map[string]*tenantMemo
}

// tenantMemo is what a Tenant's last full reconcile applied.
type tenantMemo struct {
	// generation and artifact (revision and directory) the objects
	// were rendered for.
	generation int64
	artifact   string
	// fullAt is when the last full reconcile ended.
	fullAt time.Time
	// targets are the objects of each target, by target name.
	targets map[string]*memoTarget
	// dirty are the inventory IDs of objects changed in the cluster
	// since.
	dirty map[string]bool
}

func newDriftTracker() *driftTracker {
	return &driftTracker{tenants: map[string]*tenantMemo{}}
}

// remember records a full reconcile of a Tenant. Objects that changed
// during it stay dirty: the reconcile may have read them before the
// change.
func (d *driftTracker) remember(tenant string, generation int64, artifact string, at time.Time, targets map[string]*memoTarget) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.tenants[tenant]
	if m == nil {
		m = &tenantMemo{dirty: map[string]bool{}}
		d.tenants[tenant] = m
	}
	m.generation, m.artifact, m.fullAt, m.targets = generation, artifact, at, targets
}

// memoTarget is what a full reconcile applied to one target, kept small:
// the memo of every Tenant lives as long as the process. A check finds
// an unchanged target current by its objects' Wants alone; the objects
// themselves, as JSON, are decoded only to be applied again. Kept as
// maps, they were a third of the live heap at 20,000 objects.
type memoTarget struct {
	wants []apply.Want
	data  [][]byte
}

// newMemoTarget keeps objs.
func newMemoTarget(objs []*unstructured.Unstructured) (*memoTarget, error) {
	m := &memoTarget{wants: make([]apply.Want, len(objs)), data: make([][]byte, len(objs))}
	for i, o := range objs {
		data, err := json.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("keep %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		m.wants[i], m.data[i] = apply.WantOf(o), data
	}
	return m, nil
}

// bodies returns the JSON m holds for each of objs, the objects m was
// made from or decoded into, in order: a lookup for apply.Applier's
// Encoded.
func (m *memoTarget) bodies(objs []*unstructured.Unstructured) func(*unstructured.Unstructured) []byte {
	byObject := make(map[*unstructured.Unstructured][]byte, len(objs))
	for i, o := range objs {
		byObject[o] = m.data[i]
	}
	return func(o *unstructured.Unstructured) []byte { return byObject[o] }
}

// object decodes the i-th object.
func (m *memoTarget) object(i int) (*unstructured.Unstructured, error) {
	o := &unstructured.Unstructured{}
	if err := o.UnmarshalJSON(m.data[i]); err != nil {
		return nil, fmt.Errorf("decode the applied %s %s: %w", m.wants[i].GVK.Kind, m.wants[i].Key.Name, err)
	}
	return o, nil
}

// objects decodes every object.
func (m *memoTarget) objects() ([]*unstructured.Unstructured, error) {
	objs := make([]*unstructured.Unstructured, len(m.data))
	for i := range m.data {
		o, err := m.object(i)
		if err != nil {
			return nil, err
		}
		objs[i] = o
	}
	return objs, nil
}

// markDirty records that an object of a Tenant changed in the cluster.
func (d *driftTracker) markDirty(tenant, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.tenants[tenant]
	if m == nil {
		// No full reconcile has ended yet; keep the mark for when one
		// does, as it may have read the object before this change.
		m = &tenantMemo{dirty: map[string]bool{}}
		d.tenants[tenant] = m
	}
	m.dirty[id] = true
}

// takeDirty returns the objects to re-apply, by target, when a Tenant at
// generation and artifact was fully reconciled less than interval ago,
// and clears the dirty set; ok is false when a full reconcile is due.
func (d *driftTracker) takeDirty(tenant string, generation int64, artifact string, now time.Time, interval time.Duration) (objects map[string][]*unstructured.Unstructured, next time.Duration, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.tenants[tenant]
	if m == nil {
		return nil, 0, false
	}
	if m.generation != generation || m.artifact != artifact || now.Sub(m.fullAt) >= interval {
		// The full reconcile that follows checks every object; what
		// changes while it runs is marked anew.
		clear(m.dirty)
		return nil, 0, false
	}
	objects = map[string][]*unstructured.Unstructured{}
	found := 0
	for target, mt := range m.targets {
		for i, w := range mt.wants {
			if !m.dirty[inventoryID(w.Key.Namespace, w.Key.Name, w.GVK.Group, w.GVK.Kind)] {
				continue
			}
			o, err := mt.object(i)
			if err != nil {
				// Not seen again: a full reconcile renders it anew.
				clear(m.dirty)
				return nil, 0, false
			}
			objects[target] = append(objects[target], o)
			found++
		}
	}
	if found < len(m.dirty) {
		// Something gyre provisioned (a namespace, the quota) changed:
		// only a full reconcile puts it back.
		clear(m.dirty)
		return nil, 0, false
	}
	clear(m.dirty)
	return objects, interval - now.Sub(m.fullAt), true
}

// rendered returns what the last full reconcile of a Tenant at
// generation and artifact applied, by target, or nil. An artifact's files
// never change, so rendering them again for the same spec would give the
// same objects.
func (d *driftTracker) rendered(tenant string, generation int64, artifact string) map[string]*memoTarget {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.tenants[tenant]
	if m == nil || m.targets == nil || m.generation != generation || m.artifact != artifact {
		return nil
	}
	return m.targets
}

// forget drops a Tenant, making its next reconcile a full one.
func (d *driftTracker) forget(tenant string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tenants, tenant)
}

// kindWatches watches, for every kind a Tenant applies, the objects that
// carry the gyre.dev/tenant label, and enqueues the owning Tenant when one
// changes or goes. Only metadata is cached: that is all it takes to tell
// whose object changed, and it keeps 2,000 objects cheap.
type kindWatches struct {
	cache *apply.MetadataCache
	ctrl  controller.Controller
	drift *driftTracker

	mu      sync.Mutex
	watched map[schema.GroupVersionKind]bool
}

// ensure watches every kind of objs not watched yet.
func (w *kindWatches) ensure(objs []*unstructured.Unstructured) error {
	gvks := make([]schema.GroupVersionKind, len(objs))
	for i, o := range objs {
		gvks[i] = o.GroupVersionKind()
	}
	return w.ensureKinds(gvks)
}

// ensureKinds watches every kind of gvks not watched yet.
func (w *kindWatches) ensureKinds(gvks []schema.GroupVersionKind) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, gvk := range gvks {
		// Secrets are not watched: gyre may not list them. A changed
		// Secret of a tenant is put back by the next full reconcile.
		if w.watched[gvk] || apply.IsSecret(gvk) {
			continue
		}
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(gvk)
		src := source.Kind[client.Object](w.cache, meta, handler.EnqueueRequestsFromMapFunc(w.mapper(gvk.GroupKind())), notOwnWrite())
		if err := w.ctrl.Watch(src); err != nil {
			return err
		}
		w.watched[gvk] = true
	}
	return nil
}

// mapper marks the object dirty and enqueues the Tenant its label names.
func (w *kindWatches) mapper(gk schema.GroupKind) handler.MapFunc {
	return func(_ context.Context, obj client.Object) []reconcile.Request {
		tenant := obj.GetLabels()[convention.TenantLabel]
		// Only what gyre applied carries a digest: the runs a trigger
		// starts carry the tenant labels too, and are not gyre's to
		// put back.
		if tenant == "" || obj.GetAnnotations()[convention.DigestAnnotation] == "" {
			return nil
		}
		w.drift.markDirty(tenant, inventoryID(obj.GetNamespace(), obj.GetName(), gk.Group, gk.Kind))
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: tenant}}}
	}
}

// notOwnWrite lets through deletions and updates that someone other than
// gyre made. Creations are gyre's own (or an initial listing) and never
// drift. An update is gyre's own when gyre's apply is at least as recent
// as every other manager's write to the object itself; status writes by
// other controllers do not count, as gyre never applies status.
func notOwnWrite() predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !apply.LastWriteIsOurs(e.ObjectNew.GetManagedFields(), convention.FieldManager)
		},
	}
}
