package apply

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Peeker is a Live that shows cached metadata in place. A full check
// reads the metadata of every object gyre applies; through a
// client.Reader each read allocates, copies the object's metadata and
// looks its informer up again, which at 20,000 objects is most of what
// a check with nothing to do costs.
type Peeker interface {
	// Peek returns the cached metadata of the object of kind gvk at key,
	// which the caller must not change, and whether there is one.
	Peek(ctx context.Context, gvk schema.GroupVersionKind, key client.ObjectKey) (*metav1.PartialObjectMetadata, bool, error)
}

// MetadataCache is a cache of objects' metadata (their
// metav1.PartialObjectMetadata) that is also a Peeker.
type MetadataCache struct {
	cache.Cache
	// stores maps each kind to its informer's store, looked up once.
	stores sync.Map // schema.GroupVersionKind → toolscache.Store
}

// NewMetadataCache makes c a Peeker.
func NewMetadataCache(c cache.Cache) *MetadataCache { return &MetadataCache{Cache: c} }

// Peek implements Peeker. A kind not cached yet gets its informer, and
// Peek waits for it to sync, as Get would.
func (c *MetadataCache) Peek(ctx context.Context, gvk schema.GroupVersionKind, key client.ObjectKey) (*metav1.PartialObjectMetadata, bool, error) {
	store, err := c.store(ctx, gvk)
	if err != nil {
		return nil, false, err
	}
	storeKey := key.Name
	if key.Namespace != "" {
		storeKey = key.Namespace + "/" + key.Name
	}
	obj, ok, err := store.GetByKey(storeKey)
	if err != nil || !ok {
		return nil, false, err
	}
	m, isMeta := obj.(*metav1.PartialObjectMetadata)
	if !isMeta {
		return nil, false, fmt.Errorf("metadata cache of %s holds a %T", gvk, obj)
	}
	return m, true, nil
}

// store returns the store of gvk's metadata informer.
func (c *MetadataCache) store(ctx context.Context, gvk schema.GroupVersionKind) (toolscache.Store, error) {
	if s, ok := c.stores.Load(gvk); ok {
		return s.(toolscache.Store), nil
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	inf, err := c.GetInformer(ctx, m)
	if err != nil {
		return nil, err
	}
	if !inf.HasSynced() {
		// A cache not started yet returns its informers at once.
		return nil, fmt.Errorf("metadata cache of %s has not synced", gvk)
	}
	withStore, ok := inf.(interface{ GetStore() toolscache.Store })
	if !ok {
		return nil, fmt.Errorf("informer of %s is a %T, which shows no store", gvk, inf)
	}
	s, _ := c.stores.LoadOrStore(gvk, withStore.GetStore())
	return s.(toolscache.Store), nil
}
