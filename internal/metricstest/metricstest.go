// Package metricstest reads gyre's Prometheus metrics back from
// controller-runtime's registry, for tests that assert what a scrape
// would show.
package metricstest

import (
	"fmt"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Series returns the series of the metric called name whose labels
// include every pair of match, keyed by all their labels as
// `a="x",b="y"` (sorted by label name). A counter's or gauge's value is
// its value; a histogram's is its sample count, which is what a test can
// predict. The registry is process-wide, so tests select their own series
// with a label of their own, such as a tenant.
func Series(name string, match map[string]string) (map[string]float64, error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !matches(m, match) {
				continue
			}
			out[Labels(m.GetLabel())] = value(m)
		}
	}
	return out, nil
}

// Labels spells a series' labels as Series keys them.
func Labels(pairs []*dto.LabelPair) string {
	parts := make([]string, 0, len(pairs))
	for _, p := range pairs {
		parts = append(parts, fmt.Sprintf("%s=%q", p.GetName(), p.GetValue()))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Key spells labels, given as name, value, name, value..., as Series
// keys them.
func Key(pairs ...string) string {
	labels := make([]*dto.LabelPair, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		labels = append(labels, &dto.LabelPair{Name: &pairs[i], Value: &pairs[i+1]})
	}
	return Labels(labels)
}

// Delta returns the series whose value differs between two results of
// Series, with the difference: what happened in between, for metrics
// without a label a test can call its own.
func Delta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func matches(m *dto.Metric, match map[string]string) bool {
	found := 0
	for _, p := range m.GetLabel() {
		if want, ok := match[p.GetName()]; ok {
			if want != p.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(match)
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}
