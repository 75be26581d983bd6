package render

import (
	"bytes"
	"errors"
	"path/filepath"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// listAdvice is the refusal of a resource file that is a YAML list of
// something other than objects. It says how to write the file, in the
// user's terms rather than kustomize's.
const listAdvice = "a YAML list of resources may hold only objects with apiVersion and kind; write each object as its own YAML document, after a \"---\" line"

// markResourceFile records that a kustomization lists the file at abs
// under resources, so that ReadFile may expand it if it is a YAML list.
func (f *confinedFS) markResourceFile(abs string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resourceFiles == nil {
		f.resourceFiles = map[string]bool{}
	}
	f.resourceFiles[filepath.Clean(abs)] = true
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		f.resourceFiles[resolved] = true
	}
}

func (f *confinedFS) isResourceFile(abs string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resourceFiles[abs]
}

// expandList turns a resource file whose documents are YAML lists of
// objects, as Cyclone ships its stage templates (templates/*.yaml), into
// a stream of one document per object, which is what kustomize reads.
// Other files come back unchanged. A list of anything but objects is
// refused with listAdvice: kustomize's own words for it ("missing
// Resource metadata") name neither the file's shape nor a way out.
//
// docs are the file's documents as checkYAML parsed them.
//
// Only files a kustomization lists under resources are expanded: a
// generator's data file must reach the ConfigMap byte for byte.
func expandList(data []byte, docs []*kyaml.Node) ([]byte, error) {
	lists := false
	for _, n := range docs {
		if n.Kind == kyaml.DocumentNode && len(n.Content) == 1 && n.Content[0].Kind == kyaml.SequenceNode {
			lists = true
		}
	}
	if !lists {
		return data, nil
	}
	var out bytes.Buffer
	enc := kyaml.NewEncoder(&out)
	enc.SetIndent(2)
	for _, doc := range docs {
		if len(doc.Content) != 1 {
			continue // an empty document
		}
		root := doc.Content[0]
		if root.Kind != kyaml.SequenceNode {
			if err := enc.Encode(resolveAliases(root, 0)); err != nil {
				return nil, err
			}
			continue
		}
		for _, item := range root.Content {
			item = resolveAliases(item, 0)
			if !isObject(item) {
				return nil, errors.New(listAdvice)
			}
			if err := enc.Encode(item); err != nil {
				return nil, err
			}
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// isObject reports whether n is a mapping with a non-empty apiVersion
// and kind.
func isObject(n *kyaml.Node) bool {
	if n.Kind != kyaml.MappingNode {
		return false
	}
	found := 0
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if (k.Value == "apiVersion" || k.Value == "kind") && v.Kind == kyaml.ScalarNode && v.Value != "" {
			found++
		}
	}
	return found == 2
}

// resolveAliases returns n with every alias replaced by a copy of what it
// points to, so that an item split into a document of its own keeps
// values anchored in another item. checkYAML has already bounded how far
// aliases expand; depth guards against cycles all the same.
func resolveAliases(n *kyaml.Node, depth int) *kyaml.Node {
	if depth > 1000 {
		return n
	}
	if n.Kind == kyaml.AliasNode && n.Alias != nil {
		return resolveAliases(n.Alias, depth+1)
	}
	if len(n.Content) == 0 && n.Anchor == "" {
		return n
	}
	c := *n
	c.Anchor = ""
	c.Content = make([]*kyaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = resolveAliases(child, depth+1)
	}
	return &c
}
