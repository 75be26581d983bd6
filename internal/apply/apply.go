package apply

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Apply applies objs, cluster-wide definitions (Namespaces, CRDs) first,
// and reports what it did to each object. An object that carries no
// convention.DigestAnnotation yet is stamped in place; one that carries it must have
// been stamped by Stamp and not changed since, which lets a caller that
// applies the same objects again and again stamp them once. Apply
// changes nothing else of the objects.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) (*ssa.ChangeSet, error) {
	var defs, rest []*unstructured.Unstructured
	for _, o := range objs {
		if digestOf(o) == "" {
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
		switch a.liveState(ctx, WantOf(o)) {
		case liveCurrent:
			cs.Add(entry(o, ssa.UnchangedAction))
		case liveAbsent:
			if a.createLast(o) {
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
		m := ssa.NewResourceManager(a.Client, nil, a.Owner)
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
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry), client.FieldOwner(a.Owner.Field), client.ForceOwnership, client.DryRunAll); err != nil {
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
		body, err := a.body(o)
		if err != nil {
			return fmt.Errorf("%s: %w", ssautils.FmtUnstructured(o), err)
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(o.GroupVersionKind())
		m.SetNamespace(o.GetNamespace())
		m.SetName(o.GetName())
		if err := a.Client.Patch(ctx, m, client.RawPatch(types.ApplyPatchType, body), client.FieldOwner(a.Owner.Field), client.ForceOwnership); err != nil {
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
