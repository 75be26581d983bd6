// Command crdtrim drops the descriptions under the embedded Pod specs of
// generated CRDs. Stage embeds a whole corev1.PodSpec, whose descriptions
// alone push the CRD past the 256 KiB limit of the last-applied annotation
// that `kubectl apply` (client-side) writes; gyre's own fields keep their
// descriptions, and `kubectl explain pod.spec` documents the Pod spec.
//
// Usage: crdtrim FILE JSONPATH... where JSONPATH is a dot path of property
// names below openAPIV3Schema, such as spec.pod.spec.
package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "crdtrim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: crdtrim FILE PATH [PATH]")
	}
	file := args[0]
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(b, &crd); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	versions, _ := dig(crd, "spec", "versions").([]any)
	for _, v := range versions {
		schema := dig(v, "schema", "openAPIV3Schema")
		for _, path := range args[1:] {
			node := schema
			for _, name := range strings.Split(path, ".") {
				node = dig(node, "properties", name)
			}
			if node == nil {
				return fmt.Errorf("%s: no property %s", file, path)
			}
			stripDescriptions(node)
		}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	return os.WriteFile(file, append([]byte("---\n"), out...), 0o644)
}

func dig(node any, keys ...string) any {
	for _, k := range keys {
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = m[k]
	}
	return node
}

// stripDescriptions removes every description below node, keeping node's
// own so the field itself stays documented.
func stripDescriptions(node any) {
	var walk func(n any, top bool)
	walk = func(n any, top bool) {
		switch n := n.(type) {
		case map[string]any:
			if !top {
				if _, ok := n["description"].(string); ok {
					delete(n, "description")
				}
			}
			for k, v := range n {
				if k == "properties" {
					// Property names can be "description" too: recurse
					// into each schema, never delete a property.
					if props, ok := v.(map[string]any); ok {
						for _, p := range props {
							walk(p, false)
						}
					}
					continue
				}
				walk(v, false)
			}
		case []any:
			for _, v := range n {
				walk(v, false)
			}
		}
	}
	walk(node, true)
}
