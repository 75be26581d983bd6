package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/render"
)

// diffLive renders the repository (at --head, or its working tree) and
// compares every target with what is live in the cluster: each object
// is applied server-side as a dry run, and the target's live objects that
// the render no longer has are shown as removed.
func diffLive(ctx context.Context, dir string, o diffOptions, progress io.Writer) (*repoDiff, error) {
	root, headName := dir, workingTree
	if o.head != "" {
		co, err := newCheckouts(dir)
		if err != nil {
			return nil, err
		}
		defer co.close()
		if root, err = co.at(ctx, o.head, progress); err != nil {
			return nil, err
		}
		headName = o.head
	}
	head, err := renderRepo(ctx, root, targetSelector{}, &o.policy, progress)
	if err != nil {
		return nil, err
	}
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	// The controller's applier, owner and stamp: a dry run of what the
	// controller applied changes nothing.
	a := &apply.Applier{Client: c, Owner: ssa.Owner{Field: convention.FieldManager, Group: convention.FieldManagerGroup}}

	// The live side of each target: its objects as a dry-run apply would
	// leave them, then the live objects the render lacks.
	live := make([]*render.Result, 0, len(head))
	after := make([]*render.Result, 0, len(head))
	for _, res := range head {
		if len(res.Errors) > 0 {
			continue
		}
		fmt.Fprintf(progress, "Dry-running %s\n", res.Target)
		before := &render.Result{Target: res.Target}
		applied := &render.Result{Target: res.Target}
		seen := map[string]bool{}
		for _, obj := range res.Objects {
			cur, dry, err := a.DryRun(ctx, obj)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", res.Target, objectKey(obj), err)
			}
			seen[objectKey(obj)] = true
			if cur != nil {
				before.Objects = append(before.Objects, normalize(cur))
			}
			applied.Objects = append(applied.Objects, normalize(dry))
		}
		orphans, err := targetObjects(ctx, c, res.Target)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", res.Target, err)
		}
		for _, obj := range orphans {
			if !seen[objectKey(obj)] {
				before.Objects = append(before.Objects, normalize(obj))
			}
		}
		live = append(live, before)
		after = append(after, applied)
	}
	d := compareResults(live, after)
	d.Base, d.Head, d.headResults = "live", headName, head
	return d, nil
}

// targetObjects lists the live objects a target applied before: those of
// the allowed kinds labelled with its tenant and target, as the
// controller's pruning selects them.
func targetObjects(ctx context.Context, c client.Client, t render.Target) ([]*unstructured.Unstructured, error) {
	selector := client.MatchingLabels{convention.TenantLabel: t.Tenant, convention.TargetLabel: t.Cluster}
	var out []*unstructured.Unstructured
	for _, gk := range render.DefaultAllowedKinds {
		m, err := c.RESTMapper().RESTMapping(schema.GroupKind{Group: gk.Group, Kind: gk.Kind})
		if err != nil {
			continue // the kind is not served here, so nothing of it is live
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(m.GroupVersionKind.GroupVersion().WithKind(m.GroupVersionKind.Kind + "List"))
		if err := c.List(ctx, list, client.InNamespace(t.Namespace()), selector); err != nil {
			return nil, err
		}
		for i := range list.Items {
			item := list.Items[i]
			item.SetGroupVersionKind(m.GroupVersionKind)
			out = append(out, &item)
		}
	}
	return out, nil
}

// normalize drops what the server owns and what changes on every apply,
// so that the diff shows only what the repository decides.
func normalize(obj *unstructured.Unstructured) *unstructured.Unstructured {
	o := obj.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(o.Object, "status")
	if a := o.GetAnnotations(); a != nil {
		delete(a, convention.RevisionAnnotation)
		delete(a, convention.DigestAnnotation)
		if len(a) == 0 {
			a = nil
		}
		o.SetAnnotations(a)
	}
	return o
}
