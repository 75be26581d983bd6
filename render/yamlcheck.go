package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// aliasBudget is how many nodes aliases may add to a YAML document beyond
// the nodes written out literally (or this floor, for small files). A
// "billion laughs" document expands exponentially and blows through it
// within a few levels; a manifest that reuses a few anchors stays far
// below it.
const aliasBudget = 10000

// checkYAML rejects the two YAML features that parse fine but make
// review and rendering unsafe: duplicate mapping keys (which copy of the
// key wins depends on the parser) and aliases that expand to far more
// nodes than the file holds (a "YAML bomb"). A file that does not parse
// is not refused, since kustomize may read it as data (a generator's
// file) rather than as YAML; its syntax error, with the line in the whole
// file, is returned apart, for the render to report should kustomize fail
// on it.
//
// The documents of a file that passes come back parsed, for expandList,
// which would otherwise parse the file again.
func checkYAML(data []byte) (docs []*kyaml.Node, syntax, refused error) {
	dec := kyaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		n := &kyaml.Node{}
		err := dec.Decode(n)
		if errors.Is(err, io.EOF) {
			return docs, nil, nil
		}
		if err != nil {
			return nil, err, nil
		}
		if err := checkDuplicateKeys(n); err != nil {
			return nil, nil, err
		}
		literal := countNodes(n)
		expanded := expandedSize(n, map[*kyaml.Node]int{}, 0)
		if limit := literal + max(literal, aliasBudget); expanded > limit {
			return nil, nil, fmt.Errorf("document %d: aliases expand its %d nodes to more than %d; refusing a YAML bomb", doc, literal, limit)
		}
		docs = append(docs, n)
	}
}

func checkDuplicateKeys(n *kyaml.Node) error {
	if n.Kind == kyaml.MappingNode {
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != kyaml.ScalarNode || k.Value == "<<" {
				continue
			}
			if line, dup := seen[k.Value]; dup {
				return fmt.Errorf("line %d: duplicate key %q (first on line %d)", k.Line, k.Value, line)
			}
			seen[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := checkDuplicateKeys(c); err != nil {
			return err
		}
	}
	return nil
}

func countNodes(n *kyaml.Node) int {
	total := 1
	for _, c := range n.Content {
		total += countNodes(c)
	}
	return total
}

// expandedSize counts the nodes of n with every alias replaced by what it
// points to, memoised per node so the count itself stays cheap; the sum
// saturates rather than overflow. depth guards against alias cycles,
// which the parser rejects but a hostile node graph could still contain.
func expandedSize(n *kyaml.Node, memo map[*kyaml.Node]int, depth int) int {
	const saturated = 1 << 40
	if depth > 10000 {
		return saturated
	}
	if s, ok := memo[n]; ok {
		return s
	}
	memo[n] = saturated // a cycle through n counts as unbounded
	size := 1
	if n.Kind == kyaml.AliasNode && n.Alias != nil {
		size += expandedSize(n.Alias, memo, depth+1)
	}
	for _, c := range n.Content {
		size += expandedSize(c, memo, depth+1)
		if size > saturated {
			size = saturated
		}
	}
	memo[n] = size
	return size
}
