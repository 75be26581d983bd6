package apply

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

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
	// Peek returns the cached metadata of the object of kind gvk whose
	// cache key is key (namespace/name, or the name of a cluster-wide
	// object, as client-go keys its stores), which the caller must not
	// change, and whether there is one.
	Peek(ctx context.Context, gvk schema.GroupVersionKind, key string) (*metav1.PartialObjectMetadata, bool, error)
}

// CacheKey is the key client-go's stores keep the object at key under.
func CacheKey(key client.ObjectKey) string {
	if key.Namespace == "" {
		return key.Name
	}
	return key.Namespace + "/" + key.Name
}

// MetadataCache is a cache of objects' metadata (their
// metav1.PartialObjectMetadata) that is also a Peeker.
type MetadataCache struct {
	cache.Cache
	// stores maps each kind to its informer's store, looked up once. The
	// map is replaced, never changed, when a kind is added: a check
	// reads it once per object, and a kind is added a few times in the
	// life of the process.
	stores atomic.Pointer[map[schema.GroupVersionKind]toolscache.Store]
	// mu serializes the additions.
	mu sync.Mutex
}

// NewMetadataCache makes c a Peeker.
func NewMetadataCache(c cache.Cache) *MetadataCache { return &MetadataCache{Cache: c} }

// Peek implements Peeker. A kind not cached yet gets its informer, and
// Peek waits for it to sync, as Get would.
func (c *MetadataCache) Peek(ctx context.Context, gvk schema.GroupVersionKind, key string) (*metav1.PartialObjectMetadata, bool, error) {
	store, err := c.store(ctx, gvk)
	if err != nil {
		return nil, false, err
	}
	obj, ok, err := store.GetByKey(key)
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
	if stores := c.stores.Load(); stores != nil {
		if s, ok := (*stores)[gvk]; ok {
			return s, nil
		}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[schema.GroupVersionKind]toolscache.Store{gvk: withStore.GetStore()}
	if stores := c.stores.Load(); stores != nil {
		for k, s := range *stores {
			next[k] = s
		}
	}
	c.stores.Store(&next)
	return next[gvk], nil
}
