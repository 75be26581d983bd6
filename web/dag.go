package web

import (
	"fmt"
	"slices"
	"strings"
)

// Layout of the DAG picture, in SVG user units.
const (
	nodeWidth  = 180
	nodeHeight = 52
	colGap     = 60
	rowGap     = 20
	margin     = 10
)

// dagStage is what the picture needs of one stage.
type dagStage struct {
	Name    string
	Depends []string
	Phase   string
	// Timing is the stage's duration, or how long it has been running.
	Timing string
}

// dagNode is a stage placed in the picture.
type dagNode struct {
	dagStage
	X, Y, Width, Height int
	// Class is "node phase-<phase>", which colors it.
	Class string
}

// dagEdge joins a stage to one that depends on it.
type dagEdge struct {
	From, To string
	// Path is the SVG path from the right of From to the left of To.
	Path string
}

// dag is the picture of a run's stages.
type dag struct {
	Width, Height int
	Nodes         []dagNode
	Edges         []dagEdge
}

// layoutDAG places each stage in the column after the last of its
// dependencies, and each column's stages by name, so that the same run
// always gives the same picture. Dependencies on stages the run does not
// have (left out by startStages or endStages) are not drawn; a cycle,
// which the engine refuses, puts its stages in the first column.
func layoutDAG(stages []dagStage) dag {
	byName := map[string]*dagStage{}
	for i := range stages {
		byName[stages[i].Name] = &stages[i]
	}
	col := map[string]int{}
	var depth func(name string, seen map[string]bool) int
	depth = func(name string, seen map[string]bool) int {
		if c, ok := col[name]; ok {
			return c
		}
		if seen[name] {
			return 0
		}
		seen[name] = true
		c := 0
		for _, dep := range byName[name].Depends {
			if byName[dep] != nil {
				c = max(c, depth(dep, seen)+1)
			}
		}
		delete(seen, name)
		col[name] = c
		return c
	}
	columns := [][]string{}
	for _, st := range stages {
		c := depth(st.Name, map[string]bool{})
		for len(columns) <= c {
			columns = append(columns, nil)
		}
		columns[c] = append(columns[c], st.Name)
	}
	var d dag
	pos := map[string]*dagNode{}
	rows := 0
	for c, names := range columns {
		slices.Sort(names)
		rows = max(rows, len(names))
		for r, name := range names {
			st := byName[name]
			d.Nodes = append(d.Nodes, dagNode{
				dagStage: *st,
				X:        margin + c*(nodeWidth+colGap), Y: margin + r*(nodeHeight+rowGap),
				Width: nodeWidth, Height: nodeHeight,
				Class: "node phase-" + strings.ToLower(st.Phase),
			})
		}
	}
	for i := range d.Nodes {
		pos[d.Nodes[i].Name] = &d.Nodes[i]
	}
	for _, n := range d.Nodes {
		deps := slices.Clone(n.Depends)
		slices.Sort(deps)
		for _, dep := range slices.Compact(deps) {
			from := pos[dep]
			if from == nil || col[dep] >= col[n.Name] {
				continue
			}
			x1, y1 := from.X+from.Width, from.Y+from.Height/2
			x2, y2 := n.X, n.Y+n.Height/2
			mid := (x1 + x2) / 2
			d.Edges = append(d.Edges, dagEdge{
				From: dep, To: n.Name,
				Path: fmt.Sprintf("M%d,%d C%d,%d %d,%d %d,%d", x1, y1, mid, y1, mid, y2, x2-4, y2),
			})
		}
	}
	d.Width = 2*margin + len(columns)*nodeWidth + max(len(columns)-1, 0)*colGap
	d.Height = 2*margin + rows*nodeHeight + max(rows-1, 0)*rowGap
	return d
}

// stageOrder is the stages' order on the page: by column, then by name.
func stageOrder(d dag) []string {
	names := make([]string, len(d.Nodes))
	for i, n := range d.Nodes {
		names[i] = n.Name
	}
	return names
}
