package reconciler

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gyreops/gyre/render"
)

// tenantMetrics are the tenant reconciler's Prometheus metrics, served
// from controller-runtime's registry with the manager's own. Their labels
// are bounded: the tenant and the target (a cluster of the Tenant's spec),
// never a revision or object name.
type tenantMetrics struct {
	duration *prometheus.HistogramVec
	applied  *prometheus.CounterVec
	pruned   *prometheus.CounterVec
	drift    *prometheus.CounterVec
	render   *prometheus.HistogramVec
}

func newTenantMetrics() *tenantMetrics {
	return &tenantMetrics{
		duration: register(prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gyre_tenant_reconcile_duration_seconds",
			Help:    "Duration of Tenant reconciles.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"tenant"})),
		applied: register(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_tenant_objects_applied_total",
			Help: "Objects created or changed by applying a target's revision.",
		}, []string{"tenant", "target"})),
		pruned: register(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_tenant_objects_pruned_total",
			Help: "Objects deleted because they left the target's rendering.",
		}, []string{"tenant", "target"})),
		drift: register(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_tenant_drift_corrections_total",
			Help: "Objects put back after they were changed or deleted in the cluster.",
		}, []string{"tenant", "target"})),
		render: register(prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gyre_tenant_render_duration_seconds",
			Help:    "Duration of rendering one target of a Tenant (kustomize build, tenancy checks, validation).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5 ms .. 40 s
		}, []string{"tenant", "target"})),
	}
}

// timedRender renders as r.Renderer does and records how long it took.
func (r *TenantReconciler) timedRender(ctx context.Context, root string, t render.Target, opts render.Options) (*render.Result, error) {
	start := r.Clock.Now()
	res, err := r.Renderer.Render(ctx, root, t, opts)
	r.metrics.render.WithLabelValues(t.Tenant, t.Cluster).Observe(r.Clock.Since(start).Seconds())
	return res, err
}

// register registers c, or returns the collector registered before under
// the same name: a process may set up several managers (tests, restarts).
func register[C prometheus.Collector](c C) C {
	if err := metrics.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: two metrics of one name
	}
	return c
}

// forget drops a deleted Tenant's series.
func (m *tenantMetrics) forget(tenant string) {
	m.duration.DeleteLabelValues(tenant)
	m.render.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
	for _, v := range []*prometheus.CounterVec{m.applied, m.pruned, m.drift} {
		v.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
	}
}
