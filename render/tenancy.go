package render

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gyreops/gyre/internal/convention"
)

// DefaultAllowedKinds are the kinds a tenant may keep in its repository
// when nothing else is configured: the namespaced Cyclone kinds, and the
// ConfigMaps and Secrets their stages use.
var DefaultAllowedKinds = []metav1.GroupKind{
	{Group: "cyclone.dev", Kind: "Project"},
	{Group: "cyclone.dev", Kind: "Resource"},
	{Group: "cyclone.dev", Kind: "Stage"},
	{Group: "cyclone.dev", Kind: "Workflow"},
	{Group: "cyclone.dev", Kind: "WorkflowTrigger"},
	{Group: "cyclone.dev", Kind: "WorkflowRun"},
	{Group: "", Kind: "ConfigMap"},
	{Group: "", Kind: "Secret"},
}

// enforceTenancy confines objects to their tenant: only allowed kinds,
// nothing cluster-scoped, nothing in another namespace. Objects that pass
// are moved into the tenant's namespace and stamped with the tenant and
// cluster labels. It returns one error per refused object.
func enforceTenancy(objs []*unstructured.Unstructured, origins []string, t Target, allowed []metav1.GroupKind, schemas *Schemas) []Error {
	if len(allowed) == 0 {
		allowed = DefaultAllowedKinds
	}
	allow := make(map[schema.GroupKind]bool, len(allowed))
	for _, gk := range allowed {
		allow[schema.GroupKind{Group: gk.Group, Kind: gk.Kind}] = true
	}
	ns := t.Namespace()
	var errs []Error
	for i, o := range objs {
		fail := func(field, msg string) {
			errs = append(errs, Error{File: origins[i], Kind: o.GetKind(), Name: o.GetName(), Field: field, Message: msg})
		}
		gk := o.GroupVersionKind().GroupKind()
		if namespaced, _ := schemas.Namespaced(gk); !namespaced {
			fail("", fmt.Sprintf("%s is cluster-scoped; a tenant may only create objects in its namespace %s", kindName(gk), ns))
			continue
		}
		if !allow[gk] {
			fail("", fmt.Sprintf("kind %s is not allowed for tenant %s (allowed: %s)", kindName(gk), t.Tenant, kindList(allowed)))
			continue
		}
		if got := o.GetNamespace(); got != "" && got != ns {
			fail("metadata.namespace", fmt.Sprintf("namespace %q is not the tenant's namespace %q", got, ns))
			continue
		}
		o.SetNamespace(ns)
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[convention.TenantLabel] = t.Tenant
		labels[convention.TargetLabel] = t.Cluster
		o.SetLabels(labels)
	}
	return errs
}

func kindName(gk schema.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Kind + "." + gk.Group
}

func kindList(gks []metav1.GroupKind) string {
	names := make([]string, len(gks))
	for i, gk := range gks {
		names[i] = kindName(schema.GroupKind{Group: gk.Group, Kind: gk.Kind})
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// stampRevision sets the revision annotation on every object.
func stampRevision(objs []*unstructured.Unstructured, revision string) {
	if revision == "" {
		return
	}
	for _, o := range objs {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[convention.RevisionAnnotation] = revision
		o.SetAnnotations(a)
	}
}
