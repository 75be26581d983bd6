package exec

import (
	"fmt"
	"slices"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// node is one stage of a run's DAG.
type node struct {
	Name    string
	Depends []string
	Trivial bool
}

// selectStages validates a Workflow's stages as a DAG and returns the ones
// a run executes: with start stages, those and everything after them; with
// end stages, those and everything before them; with both, the stages in
// between. Depends lists keep only selected stages, so a run that starts
// mid-workflow does not wait for stages it skips.
func selectStages(items []cyclonev1alpha1.StageItem, start, end []string) ([]node, error) {
	byName := make(map[string]cyclonev1alpha1.StageItem, len(items))
	for _, it := range items {
		if _, dup := byName[it.Name]; dup {
			return nil, fmt.Errorf("stage %q is listed twice", it.Name)
		}
		byName[it.Name] = it
	}
	for _, it := range items {
		for _, d := range it.Depends {
			if _, ok := byName[d]; !ok {
				return nil, fmt.Errorf("stage %q depends on unknown stage %q", it.Name, d)
			}
		}
	}
	if _, err := topoOrder(items); err != nil {
		return nil, err
	}
	for _, names := range [][]string{start, end} {
		for _, n := range names {
			if _, ok := byName[n]; !ok {
				return nil, fmt.Errorf("unknown stage %q in startStages or endStages", n)
			}
		}
	}

	selected := make(map[string]bool, len(items))
	for _, it := range items {
		selected[it.Name] = true
	}
	if len(start) > 0 {
		dependants := map[string][]string{}
		for _, it := range items {
			for _, d := range it.Depends {
				dependants[d] = append(dependants[d], it.Name)
			}
		}
		after := reach(start, func(n string) []string { return dependants[n] })
		for n := range selected {
			selected[n] = after[n]
		}
	}
	if len(end) > 0 {
		before := reach(end, func(n string) []string { return byName[n].Depends })
		for n := range selected {
			selected[n] = selected[n] && before[n]
		}
	}

	var nodes []node
	for _, it := range items {
		if !selected[it.Name] {
			continue
		}
		n := node{Name: it.Name, Trivial: it.Trivial}
		for _, d := range it.Depends {
			if selected[d] {
				n.Depends = append(n.Depends, d)
			}
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no stage lies between startStages %v and endStages %v", start, end)
	}
	return nodes, nil
}

// reach returns the names reachable from roots along next, roots included.
func reach(roots []string, next func(string) []string) map[string]bool {
	seen := map[string]bool{}
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, next(n)...)
	}
	return seen
}

// topoOrder returns the stage names in an order where every stage follows
// the stages it depends on, ties broken by the Workflow's order; it fails
// on a cycle.
func topoOrder(items []cyclonev1alpha1.StageItem) ([]string, error) {
	indegree := make(map[string]int, len(items))
	dependants := map[string][]string{}
	for _, it := range items {
		indegree[it.Name] += 0
		for _, d := range it.Depends {
			indegree[it.Name]++
			dependants[d] = append(dependants[d], it.Name)
		}
	}
	order := make([]string, 0, len(items))
	done := map[string]bool{}
	for len(order) < len(items) {
		progressed := false
		for _, it := range items {
			if done[it.Name] || indegree[it.Name] > 0 {
				continue
			}
			done[it.Name] = true
			order = append(order, it.Name)
			for _, d := range dependants[it.Name] {
				indegree[d]--
			}
			progressed = true
		}
		if !progressed {
			var cycle []string
			for _, it := range items {
				if !done[it.Name] {
					cycle = append(cycle, it.Name)
				}
			}
			return nil, fmt.Errorf("stages %v depend on each other in a cycle", cycle)
		}
	}
	return order, nil
}
