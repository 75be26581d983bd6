package render

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// fixArtifactSources carries renames into Workflow artifact sources.
//
// An input artifact names its source as "<stage>/<artifact>", one string,
// so kustomize's nameReference cannot follow a namePrefix or nameSuffix
// into it the way it follows the stage names around it. gyre rewrites a
// source whose stage is not in the workflow when the rename is certain:
// there is exactly one prefix p and suffix s shared by every stage of the
// workflow such that p+stage+s is one of them. Anything less certain is
// left alone, and validation reports the source, so a typo is never
// "corrected" into a different stage.
func fixArtifactSources(objs []*unstructured.Unstructured) {
	for _, o := range objs {
		if o.GetKind() != "Workflow" || o.GroupVersionKind().Group != "cyclone.dev" {
			continue
		}
		stages, ok, _ := unstructured.NestedSlice(o.Object, "spec", "stages")
		if !ok {
			continue
		}
		var names []string
		items := map[string]bool{}
		for _, s := range stages {
			if m, ok := s.(map[string]any); ok {
				if n, ok := m["name"].(string); ok {
					names = append(names, n)
					items[n] = true
				}
			}
		}
		if len(names) < 2 {
			continue
		}
		prefix, suffix := commonPrefix(names), commonSuffix(names)
		if prefix == "" && suffix == "" {
			continue
		}
		changed := false
		for _, s := range stages {
			m, _ := s.(map[string]any)
			arts, _ := m["artifacts"].([]any)
			for _, a := range arts {
				am, _ := a.(map[string]any)
				src, _ := am["source"].(string)
				stage, artifact, ok := strings.Cut(src, "/")
				if !ok || items[stage] {
					continue
				}
				if renamed := renamedStage(stage, names, prefix, suffix); renamed != "" {
					am["source"] = renamed + "/" + artifact
					changed = true
				}
			}
		}
		if changed {
			_ = unstructured.SetNestedSlice(o.Object, stages, "spec", "stages")
		}
	}
}

// renamedStage returns the one stage name that is p+stage+s for a prefix
// p of prefix and a suffix s of suffix, or "" when there is none or more
// than one.
func renamedStage(stage string, names []string, prefix, suffix string) string {
	found := ""
	for _, n := range names {
		i := strings.Index(n, stage)
		for i >= 0 {
			p, s := n[:i], n[i+len(stage):]
			if (p != "" || s != "") && strings.HasPrefix(prefix, p) && strings.HasSuffix(suffix, s) {
				if found != "" && found != n {
					return ""
				}
				found = n
			}
			next := strings.Index(n[i+1:], stage)
			if next < 0 {
				break
			}
			i += 1 + next
		}
	}
	return found
}

func commonPrefix(ss []string) string {
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(s, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

func commonSuffix(ss []string) string {
	x := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasSuffix(s, x) {
			x = x[1:]
		}
	}
	return x
}
