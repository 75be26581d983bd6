package tenants

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DigestAnnotation holds the digest of the object gyre last applied, as
// gyre rendered it. With the object's managed fields it tells, from
// metadata alone, that the object still is what gyre wants.
const DigestAnnotation = "gyre.dev/digest"

// Applier server-side applies objects as FieldManager, writing only the
// objects that differ from what is live.
//
// An object is skipped without a request when Live shows it carrying the
// digest of the wanted object and no manager but gyre has written it
// since: gyre's fields then still hold exactly what gyre applied. An
// object Live does not have is validated with a dry run and created; only
// the rest pay for fluxcd/pkg/ssa's read and dry-run diff. Every object is
// validated by the API server before any is written, so a batch that the
// server rejects writes nothing.
type Applier struct {
	// Client writes to the cluster, and reads it where Live cannot tell.
	Client client.Client
	// Live reads the metadata of the objects gyre labelled with
	// TenantLabel, from a cache kept by a watch; nil makes every object
	// take the read-and-diff path. A stale Live costs requests, never a
	// missed write: an object changed behind it is reported by the watch
	// that feeds it, and a change-driven reconcile follows.
	Live client.Reader
	// Concurrency is how many requests are in flight at once; default 10.
	Concurrency int
}

// Apply applies objs, cluster-wide definitions (Namespaces, CRDs) first,
// and reports what it did to each object. An object that carries no
// DigestAnnotation yet is stamped in place; one that carries it must have
// been stamped by Stamp and not changed since, which lets a caller that
// applies the same objects again and again stamp them once. Apply
// changes nothing else of the objects.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) (*ssa.ChangeSet, error) {
	var defs, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetAnnotations()[DigestAnnotation] == "" {
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
func (a *Applier) applyStage(ctx context.Context, objs []*unstructured.Unstructured, cs *ssa.ChangeSet) error {
	var absent, present []*unstructured.Unstructured
	for _, o := range objs {
		switch a.liveState(ctx, o) {
		case liveCurrent:
			cs.Add(entry(o, ssa.UnchangedAction))
		case liveAbsent:
			absent = append(absent, o)
		default:
			present = append(present, o)
		}
	}
	// Validate the new objects before writing anything.
	if err := a.each(ctx, absent, func(ctx context.Context, _ int, o *unstructured.Unstructured) error {
		dry := o.DeepCopy()
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry), client.FieldOwner(FieldManager), client.ForceOwnership, client.DryRunAll); err != nil {
			return fmt.Errorf("%s dry-run failed: %w", ssautils.FmtUnstructured(o), err)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(present) > 0 {
		m := ssa.NewResourceManager(a.Client, nil, ssa.Owner{Field: FieldManager, Group: "gyre.dev"})
		m.SetConcurrency(a.concurrency())
		changes, err := m.ApplyAll(ctx, present, ssa.DefaultApplyOptions())
		if changes != nil {
			cs.Append(changes.Entries)
		}
		if err != nil {
			return err
		}
	}
	actions := make([]ssa.Action, len(absent))
	// Creation times have a resolution of a second.
	start := time.Now().Add(-time.Second)
	err := a.each(ctx, absent, func(ctx context.Context, i int, o *unstructured.Unstructured) error {
		applied := o.DeepCopy()
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(applied), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("%s apply failed: %w", ssautils.FmtUnstructured(o), err)
		}
		// Live may have lagged behind an object that exists already;
		// the apply then updated it, if it changed anything at all.
		actions[i] = ssa.CreatedAction
		if applied.GetCreationTimestamp().Time.Before(start) {
			actions[i] = ssa.ConfiguredAction
		}
		return nil
	})
	for i, o := range absent {
		if actions[i] != "" {
			cs.Add(entry(o, actions[i]))
		}
	}
	return err
}

// each runs fn on every object, Concurrency at a time, and returns the
// first error.
func (a *Applier) each(ctx context.Context, objs []*unstructured.Unstructured, fn func(context.Context, int, *unstructured.Unstructured) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(a.concurrency())
	for i, o := range objs {
		g.Go(func() error { return fn(ctx, i, o) })
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
	if a.Live == nil {
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
	case m.Annotations[DigestAnnotation] == o.GetAnnotations()[DigestAnnotation] && LastWriteIsOurs(m.ManagedFields):
		return liveCurrent
	}
	return liveUnknown
}

// Stamp sets DigestAnnotation on o to the digest of o without it.
func Stamp(o *unstructured.Unstructured) error {
	a := o.GetAnnotations()
	delete(a, DigestAnnotation)
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
	a[DigestAnnotation] = "sha256:" + hex.EncodeToString(sum[:])
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
		if f.Manager == FieldManager && f.Operation == metav1.ManagedFieldsOperationApply && f.Time != nil {
			ours = f.Time.Time
		}
	}
	if ours.IsZero() {
		return false
	}
	for _, f := range fields {
		if f.Manager == FieldManager || f.Subresource != "" || f.Time == nil {
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
