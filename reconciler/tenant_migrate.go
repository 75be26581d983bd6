package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
)

// relabeled remembers the targets whose live objects were checked for the
// legacy tenant labels since the controller started, so that the check
// costs one listing per kind once, not on every reconcile.
type relabeled struct {
	mu   sync.Mutex
	done map[string]bool
}

func (m *relabeled) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done[key]
}

func (m *relabeled) add(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		m.done = map[string]bool{}
	}
	m.done[key] = true
}

// relabelLegacy gives the tenant label pair to the live objects of a
// target that carry only the legacy pair render once stamped. Without it
// the adoption check would refuse them as someone else's, and pruning,
// which selects on the new pair, would leave them behind. It looks at the
// objects the target renders and those in its inventory, and keeps the
// target the legacy label named.
func (r *TenantReconciler) relabelLegacy(ctx context.Context, others *liveOthers, t *gyrev1alpha1.Tenant, target string, objs []*unstructured.Unstructured, inv *gyrev1alpha1.Inventory) error {
	key := t.Name + "/" + target
	if r.migrated.has(key) {
		return nil
	}
	byGroup := map[metaGroup]map[string]*unstructured.Unstructured{}
	add := func(o *unstructured.Unstructured) {
		k := metaGroup{gvk: o.GroupVersionKind(), namespace: o.GetNamespace()}
		if byGroup[k] == nil {
			byGroup[k] = map[string]*unstructured.Unstructured{}
		}
		byGroup[k][o.GetName()] = o
	}
	for _, o := range objs {
		add(o)
	}
	for _, e := range inventoryEntries(inv) {
		o, err := entryObject(e)
		if err != nil {
			return err
		}
		add(o)
	}
	var relabeled []string
	for k, byName := range byGroup {
		if r.labelledCurrent(ctx, t.Name, k, byName) {
			continue
		}
		// Only objects without the tenant's label are listed: a
		// listing of every object of a namespace, with its managed
		// fields, costs the API server more than applying them did.
		items, err := others.list(ctx, k, byName)
		if err != nil {
			if apierrors.IsNotFound(err) {
				continue // the kind is not served (yet): nothing of it is live
			}
			return fmt.Errorf("relabel legacy objects: %w", err)
		}
		for _, m := range items {
			if byName[m.Name] == nil || m.Labels[convention.LegacyTenantLabel] != t.Name || m.Labels[convention.TenantLabel] != "" {
				continue
			}
			if err := r.relabel(ctx, k.gvk, m); err != nil {
				return err
			}
			relabeled = append(relabeled, k.gvk.Kind+"/"+m.Namespace+"/"+m.Name)
		}
	}
	if len(relabeled) > 0 {
		ctrl.LoggerFrom(ctx).Info("Relabeled objects applied with the legacy tenant labels", "objects", relabeled)
	}
	r.migrated.add(key)
	return nil
}

// labelledCurrent reports whether the metadata cache holds every object
// of byName, of kind and namespace k, with the tenant's current label.
// None of them can then carry the legacy pair alone, and k needs no
// listing: a controller restarted over applied Tenants would otherwise
// list each kind of each target once (1,000 listings at 500 Tenants).
// Secrets, which are not cached, and a cache that cannot answer say no.
func (r *TenantReconciler) labelledCurrent(ctx context.Context, tenant string, k metaGroup, byName map[string]*unstructured.Unstructured) bool {
	if r.watches == nil || apply.IsSecret(k.gvk) {
		return false
	}
	for name := range byName {
		m, ok, err := r.watches.cache.Peek(ctx, k.gvk, apply.CacheKey(client.ObjectKey{Namespace: k.namespace, Name: name}))
		if err != nil || !ok || m.Labels[convention.TenantLabel] != tenant {
			return false
		}
	}
	return true
}

// relabel moves one object from the legacy label pair to the current one.
func (r *TenantReconciler) relabel(ctx context.Context, gvk schema.GroupVersionKind, m metav1.PartialObjectMetadata) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{
		convention.TenantLabel:       m.Labels[convention.LegacyTenantLabel],
		convention.TargetLabel:       m.Labels[convention.LegacyTargetLabel],
		convention.LegacyTenantLabel: nil,
		convention.LegacyTargetLabel: nil,
	}}})
	if err != nil {
		return err
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	obj.SetNamespace(m.Namespace)
	obj.SetName(m.Name)
	if err := r.Applier.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(convention.FieldManager)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("relabel %s %s/%s: %w", gvk.Kind, m.Namespace, m.Name, err)
	}
	return nil
}
