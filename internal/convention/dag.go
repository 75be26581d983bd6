package convention

import (
	"fmt"
	"slices"
	"strings"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// Node is one stage of a run's DAG.
type Node struct {
	Name    string
	Depends []string
	Trivial bool
}

// SelectStages validates a Workflow's stages as a DAG and returns the ones
// a run executes: with start stages, those and everything after them;
// with end stages, those and everything before them; with both, the
// stages in between. Depends lists keep only selected stages, so a run
// that starts mid-workflow does not wait for stages it skips. render
// checks every run and trigger with it, and the engine starts runs with
// it, so a run that renders is a run the engine starts.
func SelectStages(items []cyclonev1alpha1.StageItem, start, end []string) ([]Node, error) {
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
	if cycle := Cycle(items); cycle != nil {
		return nil, fmt.Errorf("stages depend on each other in a cycle: %s", strings.Join(cycle, " → "))
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

	var nodes []Node
	for _, it := range items {
		if !selected[it.Name] {
			continue
		}
		n := Node{Name: it.Name, Trivial: it.Trivial}
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

// TopoOrder returns the stage names in an order where every stage follows
// the stages it depends on, ties broken by the Workflow's order; it fails
// on a cycle. Dependencies on stages not listed are ignored.
func TopoOrder(items []cyclonev1alpha1.StageItem) ([]string, error) {
	if cycle := Cycle(items); cycle != nil {
		return nil, fmt.Errorf("stages depend on each other in a cycle: %s", strings.Join(cycle, " → "))
	}
	listed := make(map[string]bool, len(items))
	for _, it := range items {
		listed[it.Name] = true
	}
	indegree := make(map[string]int, len(items))
	dependants := map[string][]string{}
	for _, it := range items {
		indegree[it.Name] += 0
		for _, d := range it.Depends {
			if listed[d] {
				indegree[it.Name]++
				dependants[d] = append(dependants[d], it.Name)
			}
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
			// Only a stage listed twice gets here; SelectStages refuses it.
			return nil, fmt.Errorf("stages cannot be ordered")
		}
	}
	return order, nil
}

// Cycle returns the stages of one dependency cycle, first stage repeated
// at the end, or nil when the stages form a DAG. Stages are visited in
// order, so the same workflow always reports the same cycle.
func Cycle(stages []cyclonev1alpha1.StageItem) []string {
	deps := map[string][]string{}
	for _, s := range stages {
		deps[s.Name] = s.Depends
	}
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch state[n] {
		case active:
			for k, s := range stack {
				if s == n {
					return append(append([]string{}, stack[k:]...), n)
				}
			}
		case done:
			return nil
		}
		state[n] = active
		stack = append(stack, n)
		for _, d := range deps[n] {
			if _, ok := deps[d]; !ok {
				continue
			}
			if cyc := visit(d); cyc != nil {
				return cyc
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	for _, s := range stages {
		if cyc := visit(s.Name); cyc != nil {
			return cyc
		}
	}
	return nil
}

// Ancestors maps each stage to every stage that must finish before it.
// In a cycle, a stage's ancestors are those reached before the walk came
// back to it; Cycle reports the cycle itself.
func Ancestors(stages []cyclonev1alpha1.StageItem) map[string]map[string]bool {
	deps := map[string][]string{}
	for _, s := range stages {
		deps[s.Name] = s.Depends
	}
	memo := map[string]map[string]bool{}
	var of func(n string) map[string]bool
	of = func(n string) map[string]bool {
		if m, ok := memo[n]; ok {
			return m
		}
		m := map[string]bool{}
		memo[n] = m
		for _, d := range deps[n] {
			m[d] = true
			for a := range of(d) {
				m[a] = true
			}
		}
		return m
	}
	for _, s := range stages {
		of(s.Name)
	}
	return memo
}
