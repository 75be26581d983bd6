package main

import (
	"context"
	"fmt"
	"io"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

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
	head, err := renderRepo(ctx, root, targetSelector{}, o.podSecurity, progress)
	if err != nil {
		return nil, err
	}
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	l := &liveReader{client: client, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}

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
			cur, dry, err := l.dryRunApply(ctx, obj)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", res.Target, objectKey(obj), err)
			}
			seen[objectKey(obj)] = true
			if cur != nil {
				before.Objects = append(before.Objects, normalize(cur))
			}
			applied.Objects = append(applied.Objects, normalize(dry))
		}
		orphans, err := l.targetObjects(ctx, res.Target)
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

// liveReader reads and dry-run applies objects in a cluster.
type liveReader struct {
	client dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func (l *liveReader) resource(gvk schema.GroupVersionKind, ns string) (dynamic.ResourceInterface, error) {
	m, err := l.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	return l.client.Resource(m.Resource).Namespace(ns), nil
}

// dryRunApply returns the live object (nil when there is none) and the
// object as a server-side apply of obj would leave it.
func (l *liveReader) dryRunApply(ctx context.Context, obj *unstructured.Unstructured) (cur, dry *unstructured.Unstructured, err error) {
	ri, err := l.resource(obj.GroupVersionKind(), obj.GetNamespace())
	if err != nil {
		return nil, nil, err
	}
	cur, err = ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return nil, nil, err
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return nil, nil, err
	}
	force := true
	dry, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		DryRun: []string{metav1.DryRunAll}, FieldManager: convention.FieldManager, Force: &force,
	})
	if apierrors.IsNotFound(err) && cur == nil {
		// The namespace may not exist yet; then the object is simply new.
		return nil, obj.DeepCopy(), nil
	}
	return cur, dry, err
}

// targetObjects lists the live objects a target applied before: those of
// the allowed kinds labelled with its tenant and cluster.
func (l *liveReader) targetObjects(ctx context.Context, t render.Target) ([]*unstructured.Unstructured, error) {
	selector := fmt.Sprintf("%s=%s,%s=%s", convention.TenantLabel, t.Tenant, convention.TargetLabel, t.Cluster)
	var out []*unstructured.Unstructured
	for _, gk := range render.DefaultAllowedKinds {
		m, err := l.mapper.RESTMapping(schema.GroupKind{Group: gk.Group, Kind: gk.Kind})
		if err != nil {
			continue // the kind is not served here, so nothing of it is live
		}
		list, err := l.client.Resource(m.Resource).Namespace(t.Namespace()).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			item := list.Items[i]
			item.SetAPIVersion(m.GroupVersionKind.GroupVersion().String())
			item.SetKind(m.GroupVersionKind.Kind)
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
