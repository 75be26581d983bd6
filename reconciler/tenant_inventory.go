package reconciler

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

// inventoryID is an object's identity in an inventory, as Flux writes it:
// "<namespace>_<name>_<group>_<kind>". Names, namespaces and groups
// cannot contain '_', so it splits back unambiguously.
func inventoryID(namespace, name, group, kind string) string {
	return strings.Join([]string{namespace, name, group, kind}, "_")
}

// newInventory lists objects, sorted by ID.
func newInventory(objs []*unstructured.Unstructured) *gyrev1alpha1.Inventory {
	inv := &gyrev1alpha1.Inventory{Entries: make([]gyrev1alpha1.InventoryEntry, 0, len(objs))}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		inv.Entries = append(inv.Entries, gyrev1alpha1.InventoryEntry{
			ID:      inventoryID(o.GetNamespace(), o.GetName(), gvk.Group, gvk.Kind),
			Version: gvk.Version,
		})
	}
	sortInventory(inv)
	return inv
}

func sortInventory(inv *gyrev1alpha1.Inventory) {
	sort.Slice(inv.Entries, func(i, j int) bool { return inv.Entries[i].ID < inv.Entries[j].ID })
}

// inventoryEntries returns inv's entries; none for a nil inventory.
func inventoryEntries(inv *gyrev1alpha1.Inventory) []gyrev1alpha1.InventoryEntry {
	if inv == nil {
		return nil
	}
	return inv.Entries
}

// staleEntries returns the entries of old that next does not list.
func staleEntries(old, next *gyrev1alpha1.Inventory) []gyrev1alpha1.InventoryEntry {
	keep := map[string]bool{}
	for _, e := range inventoryEntries(next) {
		keep[e.ID] = true
	}
	var stale []gyrev1alpha1.InventoryEntry
	for _, e := range inventoryEntries(old) {
		if !keep[e.ID] {
			stale = append(stale, e)
		}
	}
	return stale
}

// mergeInventories returns the union of a and b, sorted; b wins on
// version.
func mergeInventories(a, b *gyrev1alpha1.Inventory) *gyrev1alpha1.Inventory {
	byID := map[string]gyrev1alpha1.InventoryEntry{}
	for _, e := range inventoryEntries(a) {
		byID[e.ID] = e
	}
	for _, e := range inventoryEntries(b) {
		byID[e.ID] = e
	}
	out := &gyrev1alpha1.Inventory{Entries: make([]gyrev1alpha1.InventoryEntry, 0, len(byID))}
	for _, e := range byID {
		out.Entries = append(out.Entries, e)
	}
	sortInventory(out)
	return out
}

// entryObject returns an object carrying only the identity of an entry,
// enough to get or delete it.
func entryObject(e gyrev1alpha1.InventoryEntry) (*unstructured.Unstructured, error) {
	p := strings.Split(e.ID, "_")
	if len(p) != 4 {
		return nil, fmt.Errorf("inventory entry %q: want <namespace>_<name>_<group>_<kind>", e.ID)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: p[2], Version: e.Version, Kind: p[3]})
	u.SetNamespace(p[0])
	u.SetName(p[1])
	return u, nil
}

// massPrune reports whether pruning stale entries out of an inventory of
// total entries deletes more than half of it.
func massPrune(stale, total int) bool {
	return total > 0 && 2*stale > total
}
