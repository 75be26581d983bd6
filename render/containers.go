package render

import (
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// nameContainers names the unnamed workload containers of every Stage
// "c0", "c1", … skipping names already taken, as Cyclone names them when
// it builds the Pod. Cyclone's own stage templates leave the names out;
// the Stage schema keys containers by name, so without this they would
// not apply.
func nameContainers(objs []*unstructured.Unstructured) {
	for _, o := range objs {
		if o.GetKind() != "Stage" || o.GroupVersionKind().Group != "cyclone.dev" {
			continue
		}
		containers, ok, _ := unstructured.NestedSlice(o.Object, "spec", "pod", "spec", "containers")
		if !ok {
			continue
		}
		taken := map[string]bool{}
		unnamed := false
		for _, c := range containers {
			m, _ := c.(map[string]any)
			if n, _ := m["name"].(string); n != "" {
				taken[n] = true
			} else if m != nil {
				unnamed = true
			}
		}
		if !unnamed {
			continue
		}
		next := 0
		for _, c := range containers {
			m, _ := c.(map[string]any)
			if m == nil {
				continue
			}
			if n, _ := m["name"].(string); n != "" {
				continue
			}
			for taken["c"+strconv.Itoa(next)] {
				next++
			}
			m["name"] = "c" + strconv.Itoa(next)
			taken[m["name"].(string)] = true
		}
		_ = unstructured.SetNestedSlice(o.Object, containers, "spec", "pod", "spec", "containers")
	}
}
