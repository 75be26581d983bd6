package render

import (
	"fmt"
	"sort"
	"strings"
)

// Conflict is one object identity that more than one target renders.
type Conflict struct {
	// ID is "<namespace>_<name>_<group>_<kind>", the inventory ID.
	ID string `json:"id"`
	// Targets that render it, sorted.
	Targets []Target `json:"targets"`
}

// MarkConflicts finds the object identities that more than one result
// renders and reports each on every result involved: it appends an error
// naming the other targets and drops the result's objects, so that
// neither target applies and the two never take turns overwriting the
// object. It returns the conflicts, sorted by ID.
func MarkConflicts(results []*Result) []Conflict {
	owners := map[string][]int{}
	for i, r := range results {
		if r == nil {
			continue
		}
		for _, o := range r.Objects {
			id := objectID(o.GetNamespace(), o.GetName(), o.GroupVersionKind().Group, o.GetKind())
			if n := len(owners[id]); n == 0 || owners[id][n-1] != i {
				owners[id] = append(owners[id], i)
			}
		}
	}
	var conflicts []Conflict
	for id, idx := range owners {
		if len(idx) < 2 {
			continue
		}
		c := Conflict{ID: id}
		for _, i := range idx {
			c.Targets = append(c.Targets, results[i].Target)
		}
		sortTargets(c.Targets)
		conflicts = append(conflicts, c)
	}
	sort.Slice(conflicts, func(i, j int) bool { return conflicts[i].ID < conflicts[j].ID })

	pending := map[int][]Error{}
	for _, c := range conflicts {
		ns, name, _, kind := splitID(c.ID)
		for _, i := range owners[c.ID] {
			var others []string
			for _, t := range c.Targets {
				if t.String() != results[i].Target.String() {
					others = append(others, t.String())
				}
			}
			pending[i] = append(pending[i], Error{
				File:    results[i].Dir,
				Kind:    kind,
				Name:    name,
				Message: fmt.Sprintf("conflict: target %s also renders %s/%s in namespace %s", strings.Join(others, ", "), kind, name, ns),
			})
		}
	}
	for i, errs := range pending {
		results[i].fail(errs...)
	}
	return conflicts
}

func objectID(ns, name, group, kind string) string {
	return strings.Join([]string{ns, name, group, kind}, "_")
}

func splitID(id string) (ns, name, group, kind string) {
	p := strings.SplitN(id, "_", 4)
	for len(p) < 4 {
		p = append(p, "")
	}
	return p[0], p[1], p[2], p[3]
}
