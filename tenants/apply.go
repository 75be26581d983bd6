package tenants

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/gyreops/gyre/internal/convention"
	"sync/atomic"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The digest annotation (convention.DigestAnnotation) holds the digest of the object gyre last applied, as
// gyre rendered it. With the object's managed fields it tells, from
// metadata alone, that the object still is what gyre wants.

// Applier server-side applies objects as convention.FieldManager, writing only the
// objects that differ from what is live.
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
// refusal is rare. Objects whose creation starts work (WorkflowRuns) are
// the exception: they are validated with a dry run and created last, so
// no run starts for a batch that is undone.
type Applier struct {
	// Client writes to the cluster, and reads it where Live cannot tell.
	Client client.Client
	// Live reads the metadata of the objects gyre labelled with
	// convention.TenantLabel, from a cache kept by a watch; nil makes every object
	// take the read-and-diff path. A stale Live costs requests, never a
	// missed write: an object changed behind it is reported by the watch
	// that feeds it, and a change-driven reconcile follows.
	Live client.Reader
	// Concurrency is how many requests are in flight at once; default 10.
	Concurrency int
}

// Apply applies objs, cluster-wide definitions (Namespaces, CRDs) first,
// and reports what it did to each object. An object that carries no
// convention.DigestAnnotation yet is stamped in place; one that carries it must have
// been stamped by Stamp and not changed since, which lets a caller that
// applies the same objects again and again stamp them once. Apply
// changes nothing else of the objects.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) (*ssa.ChangeSet, error) {
	var defs, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetAnnotations()[convention.DigestAnnotation] == "" {
			if err := Stamp(o); err != nil {
				return nil, err
			}
		}
		if ssautils.IsClusterDefinition(o) {
			defs = append(defs, o)
		} else {
			rest = append(rest, o)
		}
	}
	cs := ssa.NewChangeSet()
	for _, stage := range [][]*unstructured.Unstructured{defs, rest} {
		if len(stage) == 0 {
			continue
		}
		if err := a.applyStage(ctx, stage, cs); err != nil {
			return cs, err
		}
	}
	return cs, nil
}

// applyStage applies objects that do not depend on each other.
func (a *Applier) applyStage(ctx context.Context, objs []*unstructured.Unstructured, cs *ssa.ChangeSet) (err error) {
	var absent, starters, present []*unstructured.Unstructured
	for _, o := range objs {
		switch a.liveState(ctx, o) {
		case liveCurrent:
			cs.Add(entry(o, ssa.UnchangedAction))
		case liveAbsent:
			if startsWork(o) {
				starters = append(starters, o)
			} else {
				absent = append(absent, o)
			}
		default:
			present = append(present, o)
		}
	}
	var created []*unstructured.Unstructured
	defer func() {
		if err != nil {
			err = a.undo(created, err)
			return
		}
		for _, o := range created {
			cs.Add(entry(o, ssa.CreatedAction))
		}
	}()
	c, configured, err := a.create(ctx, absent)
	created = append(created, c...)
	for _, o := range configured {
		cs.Add(entry(o, ssa.ConfiguredAction))
	}
	if err != nil {
		return err
	}
	if len(present) > 0 {
		m := ssa.NewResourceManager(a.Client, nil, ssa.Owner{Field: convention.FieldManager, Group: "gyre.dev"})
		m.SetConcurrency(a.concurrency())
		changes, err := m.ApplyAll(ctx, present, ssa.DefaultApplyOptions())
		if changes != nil {
			cs.Append(changes.Entries)
		}
		if err != nil {
			return err
		}
	}
	if len(starters) == 0 {
		return nil
	}
	if err := a.each(ctx, starters, false, func(ctx context.Context, _ int, o *unstructured.Unstructured) error {
		dry := o.DeepCopy()
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry), client.FieldOwner(convention.FieldManager), client.ForceOwnership, client.DryRunAll); err != nil {
			return fmt.Errorf("%s dry-run failed: %w", ssautils.FmtUnstructured(o), err)
		}
		return nil
	}); err != nil {
		return err
	}
	c, configured, err = a.create(ctx, starters)
	created = append(created, c...)
	for _, o := range configured {
		cs.Add(entry(o, ssa.ConfiguredAction))
	}
	return err
}

// create applies objects Live does not have. It returns references to
// the ones it created, and the ones that turned out to
// exist already: Live may lag behind an object created a moment ago, and
// the apply then updated it, if it changed anything at all.
//
// The API server answers with the metadata alone: the rest of the object
// is what was sent, and decoding it back would cost both sides more than
// the apply itself does.
func (a *Applier) create(ctx context.Context, objs []*unstructured.Unstructured) (created, configured []*unstructured.Unstructured, err error) {
	results := make([]*unstructured.Unstructured, len(objs))
	existed := make([]bool, len(objs))
	// Creation times have a resolution of a second.
	start := time.Now().Add(-time.Second)
	err = a.each(ctx, objs, false, func(ctx context.Context, i int, o *unstructured.Unstructured) error {
		body, err := json.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("%s: %w", ssautils.FmtUnstructured(o), err)
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(o.GroupVersionKind())
		m.SetNamespace(o.GetNamespace())
		m.SetName(o.GetName())
		if err := a.Client.Patch(ctx, m, client.RawPatch(types.ApplyPatchType, body), client.FieldOwner(convention.FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("%s apply failed: %w", ssautils.FmtUnstructured(o), err)
		}
		results[i] = reference(o, m.UID)
		existed[i] = m.CreationTimestamp.Time.Before(start)
		return nil
	})
	for i, o := range results {
		switch {
		case o == nil:
		case existed[i]:
			configured = append(configured, objs[i])
		default:
			created = append(created, o)
		}
	}
	return created, configured, err
}

// reference is the identity of o with the UID the server gave it: enough
// to report it and to delete exactly it.
func reference(o *unstructured.Unstructured, uid types.UID) *unstructured.Unstructured {
	r := &unstructured.Unstructured{}
	r.SetGroupVersionKind(o.GroupVersionKind())
	r.SetNamespace(o.GetNamespace())
	r.SetName(o.GetName())
	r.SetUID(uid)
	return r
}

// undo deletes the objects a refused batch created, each only if it is
// still the object gyre created, and returns the refusal with what could
// not be undone. An object the batch found existing after all (Live
// lagging behind) keeps what was applied to it: there is no earlier
// state of it to go back to.
func (a *Applier) undo(created []*unstructured.Unstructured, cause error) error {
	if len(created) == 0 {
		return cause
	}
	// The batch's context may be what failed; the undo gets its own.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uerr := a.each(ctx, created, true, func(ctx context.Context, _ int, o *unstructured.Unstructured) error {
		uid := o.GetUID()
		err := a.Client.Delete(ctx, o, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("%s: %w", ssautils.FmtUnstructured(o), err)
		}
		return nil
	})
	if uerr != nil {
		return fmt.Errorf("%w; deleting the objects created before the refusal failed too: %v", cause, uerr)
	}
	return cause
}

// startsWork reports whether creating o starts work that undoing the
// creation would not take back.
func startsWork(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "cyclone.dev" && gvk.Kind == "WorkflowRun"
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

// liveState says what Live knows of o.
func (a *Applier) liveState(ctx context.Context, o *unstructured.Unstructured) liveState {
	if a.Live == nil || IsSecret(o.GroupVersionKind()) {
		return liveUnknown
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(o.GroupVersionKind())
	err := a.Live.Get(ctx, client.ObjectKeyFromObject(o), m)
	switch {
	case apierrors.IsNotFound(err):
		return liveAbsent
	case err != nil, m.DeletionTimestamp != nil:
		return liveUnknown
	case m.Annotations[convention.DigestAnnotation] == o.GetAnnotations()[convention.DigestAnnotation] && LastWriteIsOurs(m.ManagedFields):
		return liveCurrent
	}
	return liveUnknown
}

// IsSecret tells whether gvk is a core Secret. gyre may neither list nor
// watch Secrets (config/rbac), not even their metadata: a Secret is read
// by name, from the API server, and never kept in a cache. A Live cache
// must therefore not be asked for one, and the applier takes the read
// and diff path for Secrets.
func IsSecret(gvk schema.GroupVersionKind) bool {
	return gvk.Group == "" && gvk.Kind == "Secret"
}

// Stamp sets convention.DigestAnnotation on o to the digest of o without it.
func Stamp(o *unstructured.Unstructured) error {
	a := o.GetAnnotations()
	delete(a, convention.DigestAnnotation)
	if len(a) == 0 {
		a = nil
	}
	o.SetAnnotations(a)
	// encoding/json sorts map keys, so equal objects get equal digests.
	data, err := json.Marshal(o.Object)
	if err != nil {
		return fmt.Errorf("digest %s: %w", ssautils.FmtUnstructured(o), err)
	}
	sum := sha256.Sum256(data)
	if a == nil {
		a = map[string]string{}
	}
	a[convention.DigestAnnotation] = "sha256:" + hex.EncodeToString(sum[:])
	o.SetAnnotations(a)
	return nil
}

// LastWriteIsOurs reports whether gyre's last apply of an object is at
// least as recent as every other manager's write to it. Writes to
// subresources (status, scale) do not count: gyre never applies them.
// Managed-field times have a resolution of a second, so a write in the
// same second as gyre's counts as someone else's.
func LastWriteIsOurs(fields []metav1.ManagedFieldsEntry) bool {
	var ours time.Time
	for _, f := range fields {
		if f.Manager == convention.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply && f.Time != nil {
			ours = f.Time.Time
		}
	}
	if ours.IsZero() {
		return false
	}
	for _, f := range fields {
		if f.Manager == convention.FieldManager || f.Subresource != "" || f.Time == nil {
			continue
		}
		if !f.Time.Time.Before(ours) {
			return false
		}
	}
	return true
}

func entry(o *unstructured.Unstructured, action ssa.Action) ssa.ChangeSetEntry {
	return ssa.ChangeSetEntry{
		ObjMetadata:  object.UnstructuredToObjMetadata(o),
		GroupVersion: o.GroupVersionKind().Version,
		Subject:      ssautils.FmtUnstructured(o),
		Action:       action,
	}
}
