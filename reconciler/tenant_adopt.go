package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	ssautils "github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
)

// AdoptionError says that objects a target renders already exist in the
// cluster and were not created by gyre. Server-side apply with forced
// ownership would silently take them over, and pruning would later
// delete them; gyre does neither unless an object says it may.
type AdoptionError struct {
	// Objects are the refused objects, as Kind/namespace/name, sorted.
	Objects []string
}

func (e *AdoptionError) Error() string {
	return fmt.Sprintf("%s already exist%s and %s not created by gyre; annotate %s %s: \"true\" to let gyre adopt %s",
		strings.Join(e.Objects, ", "), plural(len(e.Objects), "s", ""), plural(len(e.Objects), "was", "were"),
		plural(len(e.Objects), "it", "them"), gyrev1alpha1.AdoptAnnotation, plural(len(e.Objects), "it", "them"))
}

// plural picks one for a single item and many otherwise.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// checkAdoption returns an *AdoptionError naming every object of objs that
// exists in the cluster but is neither in the target's inventory nor
// labelled as the Tenant's, unless it is annotated gyrev1alpha1.AdoptAnnotation
// "true". Only objects new to the inventory are looked up, through
// others, so a target that applied once costs nothing here. An object
// with the Tenant's legacy label is the Tenant's: relabelLegacy, which
// runs first, moved it to the current label.
func checkAdoption(ctx context.Context, others *liveOthers, t *gyrev1alpha1.Tenant, objs []*unstructured.Unstructured, inv *gyrev1alpha1.Inventory) error {
	known := map[string]bool{}
	for _, e := range inventoryEntries(inv) {
		known[e.ID] = true
	}
	fresh := map[metaGroup]map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if known[inventoryID(o.GetNamespace(), o.GetName(), gvk.Group, gvk.Kind)] {
			continue
		}
		k := metaGroup{gvk: gvk, namespace: o.GetNamespace()}
		if fresh[k] == nil {
			fresh[k] = map[string]*unstructured.Unstructured{}
		}
		fresh[k][o.GetName()] = o
	}
	var refused []string
	for k, byName := range fresh {
		items, err := others.list(ctx, k, byName)
		if err != nil {
			return err
		}
		for _, m := range items {
			o := byName[m.Name]
			if o == nil || m.Labels[convention.TenantLabel] == t.Name || m.Annotations[gyrev1alpha1.AdoptAnnotation] == "true" ||
				(m.Labels[convention.TenantLabel] == "" && m.Labels[convention.LegacyTenantLabel] == t.Name) {
				continue
			}
			refused = append(refused, ssautils.FmtUnstructured(o))
		}
	}
	if len(refused) == 0 {
		return nil
	}
	sort.Strings(refused)
	return &AdoptionError{Objects: refused}
}

// metaGroup is a kind in a namespace: what one metadata listing covers.
type metaGroup struct {
	gvk       schema.GroupVersionKind
	namespace string
}

// liveOthers lists the live objects of a kind in a namespace that are not
// labelled as a Tenant's, once per reconcile: the legacy-label migration
// and the adoption check of every target of the Tenant share each
// listing. A listing selects on the label server-side, so the Tenant's own
// objects, usually all there is, cost the API server no encoding. A
// Tenant whose namespace provisioning made in the same reconcile, as in
// its first convergence, lists nothing there.
type liveOthers struct {
	live   client.Reader
	tenant string
	mu     sync.Mutex
	lists  map[metaGroup]*othersListing
	// made are namespaces provisioning found missing and made in this
	// reconcile: nothing of anyone else's was in them, so they are not
	// listed. Someone could make an object in one since; as for the
	// provisioned namespace itself, the check only narrows that window
	// to the apply that follows.
	made map[string]bool
}

// othersListing is one listing, shared by whoever asks for it while it
// runs.
type othersListing struct {
	done  chan struct{}
	items []metav1.PartialObjectMetadata
	err   error
}

func newLiveOthers(live client.Reader, tenant string) *liveOthers {
	return &liveOthers{live: live, tenant: tenant, lists: map[metaGroup]*othersListing{}, made: map[string]bool{}}
}

// empty says that namespaces were made in this reconcile, empty.
func (l *liveOthers) empty(namespaces ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ns := range namespaces {
		l.made[ns] = true
	}
}

// list returns the metadata of the live objects of k that are not
// labelled as the Tenant's, at least those named in byName. Secrets,
// which gyre may not list, are read one by one, and returned whatever
// their labels.
func (l *liveOthers) list(ctx context.Context, k metaGroup, byName map[string]*unstructured.Unstructured) ([]metav1.PartialObjectMetadata, error) {
	l.mu.Lock()
	if l.made[k.namespace] {
		l.mu.Unlock()
		return nil, nil
	}
	if apply.IsSecret(k.gvk) {
		l.mu.Unlock()
		return liveMetadata(ctx, l.live, k.gvk, k.namespace, byName)
	}
	c := l.lists[k]
	if c == nil {
		c = &othersListing{done: make(chan struct{})}
		l.lists[k] = c
		l.mu.Unlock()
		notOurs, err := labels.NewRequirement(convention.TenantLabel, selection.NotEquals, []string{l.tenant})
		if err == nil {
			c.items, err = liveMetadata(ctx, l.live, k.gvk, k.namespace, nil, client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*notOurs)})
		}
		c.err = err
		close(c.done)
	} else {
		l.mu.Unlock()
	}
	select {
	case <-c.done:
		return c.items, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// liveMetadata returns the metadata of the objects of kind gvk in
// namespace, at least those named in byName and matching opts: one
// listing, or, for Secrets, which gyre may not list, a read of each, which
// opts do not narrow.
func liveMetadata(ctx context.Context, live client.Reader, gvk schema.GroupVersionKind, namespace string, byName map[string]*unstructured.Unstructured, opts ...client.ListOption) ([]metav1.PartialObjectMetadata, error) {
	if !apply.IsSecret(gvk) {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := live.List(ctx, list, append([]client.ListOption{client.InNamespace(namespace)}, opts...)...); err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", gvk.Kind, namespace, err)
		}
		return list.Items, nil
	}
	var items []metav1.PartialObjectMetadata
	for name := range byName {
		m := metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		if err := live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &m); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("get %s %s/%s: %w", gvk.Kind, namespace, name, err)
		}
		items = append(items, m)
	}
	return items, nil
}
