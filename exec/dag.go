package exec

import (
	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// node is one stage of a run's DAG.
type node = convention.Node

// selectStages is convention.SelectStages, which render validates with.
func selectStages(items []cyclonev1alpha1.StageItem, start, end []string) ([]node, error) {
	return convention.SelectStages(items, start, end)
}

// topoOrder is convention.TopoOrder.
func topoOrder(items []cyclonev1alpha1.StageItem) ([]string, error) {
	return convention.TopoOrder(items)
}
