package apply

import (
	"context"
	"encoding/json"
	"sync/atomic"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/convention"
)

// Applier server-side applies objects as Owner, writing only the objects
// that differ from what is live.
//
// An object is skipped without a request when Live shows it carrying the
// digest of the wanted object and no manager but gyre has written it
// since: gyre's fields then still hold exactly what gyre applied. An
// object Live does not have is created with one request; only the rest
// pay for fluxcd/pkg/ssa's read and dry-run diff.
//
// A batch the API server rejects leaves the cluster as it was: the
// objects that exist are changed only after every new object was
// created, and when a creation or a change is refused, the objects the
// batch created are deleted again. Creating first and undoing on refusal
// costs one request per new object where a dry run of each would cost
// two; render has validated the objects against their schemas, so a
// refusal is rare. Objects whose creation starts work (CreateLast) are
// the exception: they are validated with a dry run and created last, so
// no work starts for a batch that is undone.
type Applier struct {
	// Client writes to the cluster, and reads it where Live cannot tell.
	Client client.Client
	// Live reads the metadata of the objects gyre labelled, from a cache kept by a watch; nil makes every object
	// take the read-and-diff path. A stale Live costs requests, never a
	// missed write: an object changed behind it is reported by the watch
	// that feeds it, and a change-driven reconcile follows.
	Live client.Reader
	// Concurrency is how many requests are in flight at once; default 10.
	Concurrency int
	// Owner is the field manager of every write, and of the managed
	// fields that tell whose write an object's last one was. Required.
	Owner ssa.Owner
	// CreateLast, when set, picks the objects whose creation starts work
	// that deleting them would not take back. A new one is validated with
	// a dry run and created after everything else of its batch.
	CreateLast func(*unstructured.Unstructured) bool
	// Encoded, when set, returns the JSON of an object the caller holds
	// already encoded, exactly as json.Marshal(o.Object) would give it
	// once stamped, or nil. A creation sends those bytes: gyre keeps
	// every applied object as JSON anyway, and encoding each again for
	// its apply was over a third of the JSON gyre encoded in a first
	// convergence of 20,000 objects.
	Encoded func(*unstructured.Unstructured) []byte
}

// body is the JSON o is applied as.
func (a *Applier) body(o *unstructured.Unstructured) ([]byte, error) {
	if a.Encoded != nil {
		if b := a.Encoded(o); b != nil {
			return b, nil
		}
	}
	return json.Marshal(o.Object)
}

// createLast reports whether o is created after the rest of its batch.
func (a *Applier) createLast(o *unstructured.Unstructured) bool {
	return a.CreateLast != nil && a.CreateLast(o)
}

// each runs fn on every object, Concurrency at a time, and returns the
// first error. After an error it starts no more calls unless all is set,
// but it never cancels one in flight: a write cancelled on the client may
// still happen on the server, and the caller could not tell.
func (a *Applier) each(ctx context.Context, objs []*unstructured.Unstructured, all bool, fn func(context.Context, int, *unstructured.Unstructured) error) error {
	var g errgroup.Group
	g.SetLimit(a.concurrency())
	var failed atomic.Bool
	for i, o := range objs {
		if failed.Load() && !all {
			break
		}
		g.Go(func() error {
			if failed.Load() && !all {
				return nil
			}
			err := fn(ctx, i, o)
			if err != nil {
				failed.Store(true)
			}
			return err
		})
	}
	return g.Wait()
}

func (a *Applier) concurrency() int {
	if a.Concurrency > 0 {
		return a.Concurrency
	}
	return 10
}

type liveState int

const (
	// liveUnknown: Live cannot tell; read and diff.
	liveUnknown liveState = iota
	// liveAbsent: Live has no such object.
	liveAbsent
	// liveCurrent: the object is what gyre last applied, and wants.
	liveCurrent
)

// Current reports whether Live shows every object of objs as gyre last
// applied it, and wanted: Apply would then write nothing. It sends no
// request, and is false for any object Live cannot tell about.
func (a *Applier) Current(ctx context.Context, objs []*unstructured.Unstructured) bool {
	for _, o := range objs {
		if a.liveState(ctx, WantOf(o)) != liveCurrent {
			return false
		}
	}
	return true
}

// Want is what Current needs to know of an object gyre applies: its kind,
// its key and the digest it was applied with. A caller that keeps many
// objects between checks keeps this instead of the objects.
type Want struct {
	GVK    schema.GroupVersionKind
	Key    client.ObjectKey
	Digest string
	// cacheKey is CacheKey(Key) when WantOf made the Want; Key's
	// strings are then part of it, so it costs no more memory, and a
	// check of every object builds no key.
	cacheKey string
}

// WantOf returns o's Want.
func WantOf(o *unstructured.Unstructured) Want {
	ck := CacheKey(client.ObjectKeyFromObject(o))
	key := client.ObjectKey{Name: ck}
	if ns := o.GetNamespace(); ns != "" {
		key = client.ObjectKey{Namespace: ck[:len(ns)], Name: ck[len(ns)+1:]}
	}
	return Want{GVK: o.GroupVersionKind(), Key: key, Digest: digestOf(o), cacheKey: ck}
}

// CacheKey is CacheKey(w.Key).
func (w Want) CacheKey() string {
	if w.cacheKey != "" {
		return w.cacheKey
	}
	return CacheKey(w.Key)
}

// CurrentWants is Current for objects known by their Wants.
func (a *Applier) CurrentWants(ctx context.Context, wants []Want) bool {
	for _, w := range wants {
		if a.liveState(ctx, w) != liveCurrent {
			return false
		}
	}
	return true
}

// Absent reports whether Live has none of the objects wants name, by
// kind and key. It sends no request, and is false when Live cannot tell.
func (a *Applier) Absent(ctx context.Context, wants []Want) bool {
	for _, w := range wants {
		if a.liveState(ctx, w) != liveAbsent {
			return false
		}
	}
	return true
}

// liveState says what Live knows of the object w describes.
func (a *Applier) liveState(ctx context.Context, w Want) liveState {
	if a.Live == nil || IsSecret(w.GVK) {
		return liveUnknown
	}
	var m *metav1.PartialObjectMetadata
	if p, ok := a.Live.(Peeker); ok {
		found, ok, err := p.Peek(ctx, w.GVK, w.CacheKey())
		switch {
		case err != nil:
			return liveUnknown
		case !ok:
			return liveAbsent
		}
		m = found
	} else {
		m = &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(w.GVK)
		err := a.Live.Get(ctx, w.Key, m)
		switch {
		case apierrors.IsNotFound(err):
			return liveAbsent
		case err != nil:
			return liveUnknown
		}
	}
	if m.DeletionTimestamp == nil && m.Annotations[convention.DigestAnnotation] == w.Digest && LastWriteIsOurs(m.ManagedFields, a.Owner.Field) {
		return liveCurrent
	}
	return liveUnknown
}

func entry(o *unstructured.Unstructured, action ssa.Action) ssa.ChangeSetEntry {
	return ssa.ChangeSetEntry{
		ObjMetadata:  object.UnstructuredToObjMetadata(o),
		GroupVersion: o.GroupVersionKind().Version,
		Subject:      ssautils.FmtUnstructured(o),
		Action:       action,
	}
}
