package render

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kindOrder lists kinds in the order they are applied: what is referenced
// before what refers to it. Kubernetes kinds follow fluxcd/pkg/ssa's
// reconcile order, so gyre and Flux sort shared kinds alike; Cyclone kinds
// follow their reference chain (a Stage names Resources, a Workflow names
// Stages, a trigger or run names a Workflow). Kinds not listed sort after
// these, by group and kind.
var kindOrder = func() map[string]int {
	kinds := []string{
		"CustomResourceDefinition", "Namespace", "ResourceQuota",
		"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret",
		"Service", "LimitRange",
		"ExecutionCluster", "Project", "Resource", "Stage", "Workflow",
		"WorkflowTrigger", "WorkflowRun",
	}
	m := make(map[string]int, len(kinds))
	for i, k := range kinds {
		m[k] = i - len(kinds)
	}
	return m
}()

// Sort orders objects for apply and for stable output: by kind order, then
// group, kind, namespace, name and, for identical identities, version.
func Sort(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool { return less(objs[i], objs[j]) })
}

func less(a, b *unstructured.Unstructured) bool {
	ga, gb := a.GroupVersionKind(), b.GroupVersionKind()
	if ia, ib := kindOrder[ga.Kind], kindOrder[gb.Kind]; ia != ib {
		return ia < ib
	}
	if ga.Group != gb.Group {
		return ga.Group < gb.Group
	}
	if ga.Kind != gb.Kind {
		return ga.Kind < gb.Kind
	}
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	if a.GetName() != b.GetName() {
		return a.GetName() < b.GetName()
	}
	return ga.Version < gb.Version
}
