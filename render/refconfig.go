package render

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// refSpec is one field through which a Cyclone object refers to another
// object by name: one of kustomizeconfig.yaml's nameReference field specs.
type refSpec struct {
	Kind    string `json:"kind"`
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	Path    string `json:"path"`
}

// refTarget is a kind that refSpecs refer to.
type refTarget struct {
	Kind       string    `json:"kind"`
	Group      string    `json:"group,omitempty"`
	Version    string    `json:"version,omitempty"`
	FieldSpecs []refSpec `json:"fieldSpecs"`
}

// refConfig is gyre's kustomize configuration, parsed.
type refConfig struct {
	NameReference []refTarget `json:"nameReference"`
}

// parsedRefConfig is kustomizeConfig, parsed once.
var parsedRefConfig = sync.OnceValues(func() (refConfig, error) {
	var c refConfig
	if err := yaml.UnmarshalStrict(kustomizeConfig, &c); err != nil {
		return c, fmt.Errorf("gyre's kustomize configuration: %w", err)
	}
	return c, nil
})

// refWords are the words of every path in gyre's configuration: as a
// rule, a build's objects have a path's field only if each of its words
// appears in a file the build read (see refChoice).
var refWords = sync.OnceValue(func() []string {
	c, _ := parsedRefConfig()
	var words []string
	for _, t := range c.NameReference {
		for _, s := range t.FieldSpecs {
			words = append(words, strings.Split(s.Path, "/")...)
		}
	}
	slices.Sort(words)
	return slices.Compact(words)
})

// refChoice is the part of gyre's configuration one build uses.
//
// kustomize fixes references to renamed objects by visiting, for every
// object, every field spec that names its kind, and each visit decodes
// the object's metadata again. gyre's field specs name Stages and the
// other Cyclone kinds, which a pipeline repository holds many of, while
// most Stages refer to no ConfigMap, Secret or Resource at all. Visiting
// every spec took about a fifth of a render's CPU: BenchmarkRender
// scale/sequential, alternating runs, 9.2 and 10.2 cpu-ms/target with
// every spec, 7.3 and 8.0 with those a build needs, and 43.7 against 29.5
// million allocations per 1,000 targets.
//
// A field spec can change a build only where its field exists, and a
// field exists, as a rule, only where every word of its path appears in a
// file the build read: as a key of an object, a patch or a replacement. gyre's
// configuration is read by the entry kustomization after everything it
// builds, so a build is given only the field specs whose words it saw.
// The guess is checked against the build's output: when a left-out field
// exists after all (a key spelled with YAML escapes, say), the target is
// built again with every field spec. Leaving out a spec whose field no
// object has changes nothing kustomize does: nameReference only visits
// fields, it never makes them.
type refChoice struct {
	full bool      // every field spec, after a guess proved wrong
	left []refSpec // what the last configuration served left out
}

// config returns the configuration for a build that read files holding
// the words for which saw is true, and records what it left out.
func (r *refChoice) config(saw func(string) bool) ([]byte, error) {
	c, err := parsedRefConfig()
	if err != nil {
		return nil, err
	}
	r.left = nil
	var out refConfig
	for _, t := range c.NameReference {
		kept := t
		kept.FieldSpecs = nil
		for _, s := range t.FieldSpecs {
			if r.full || allSeen(s.Path, saw) {
				kept.FieldSpecs = append(kept.FieldSpecs, s)
			} else {
				r.left = append(r.left, s)
			}
		}
		if len(kept.FieldSpecs) > 0 {
			out.NameReference = append(out.NameReference, kept)
		}
	}
	if len(out.NameReference) == 0 {
		return []byte("{}\n"), nil
	}
	return yaml.Marshal(out)
}

func allSeen(path string, saw func(string) bool) bool {
	for w := range strings.SplitSeq(path, "/") {
		if !saw(w) {
			return false
		}
	}
	return true
}

// missed reports whether one of objs has the field of a field spec the
// last configuration left out.
func (r *refChoice) missed(objs []*unstructured.Unstructured) bool {
	for _, s := range r.left {
		for _, o := range objs {
			// As in kustomize, an empty part of a field spec's kind
			// matches anything.
			gvk := o.GroupVersionKind()
			if (s.Kind != "" && gvk.Kind != s.Kind) || (s.Group != "" && gvk.Group != s.Group) || (s.Version != "" && gvk.Version != s.Version) {
				continue
			}
			if hasField(o.Object, strings.Split(s.Path, "/")) {
				return true
			}
		}
	}
	return false
}

// hasField reports whether v has the field at path, going through lists
// the way kustomize's field specs do. A field set to null counts: what
// kustomize makes of it is not worth guessing.
func hasField(v any, path []string) bool {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if hasField(e, path) {
				return true
			}
		}
	case map[string]any:
		next, ok := v[path[0]]
		return ok && (len(path) == 1 || hasField(next, path[1:]))
	}
	return false
}

// wordsIn records which of words occur in data.
func wordsIn(data []byte, words []string, seen map[string]bool) {
	for _, w := range words {
		if !seen[w] && bytes.Contains(data, []byte(w)) {
			seen[w] = true
		}
	}
}
