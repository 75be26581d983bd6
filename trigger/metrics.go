package trigger

import (
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/hookmetrics"
)

// Results of a trigger firing, the result label of gyre_trigger_fires_total.
const (
	// fireStarted: the trigger created a run.
	fireStarted = "started"
	// fireExisting: the run of that scheduled time or SCM event exists
	// already, started by another replica, an earlier reconcile or a
	// first delivery of a replayed event.
	fireExisting = "existing"
	// fireForbidden: a cron time skipped because a run of the trigger is
	// still going and its concurrency policy is Forbid.
	fireForbidden = "forbidden"
	// fireError: the run could not be started; the trigger tries again.
	fireError = "error"
)

// fires counts trigger firings. Its labels are bounded: the tenant, the
// trigger type (Cron, SCM) and the result; never a trigger or run name.
// It is registered once in controller-runtime's process-wide registry.
var fires = sync.OnceValue(func() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gyre_trigger_fires_total",
		Help: "WorkflowTrigger firings by tenant, trigger kind (Cron, SCM) and result (started, existing, forbidden, error).",
	}, []string{"tenant", "kind", "result"})
	metrics.Registry.MustRegister(c)
	return c
})

// observeFire counts one firing of trig: one scheduled time of a cron
// trigger, or one event for an SCM trigger whose policy matched.
func observeFire(trig *cyclonev1alpha1.WorkflowTrigger, result string) {
	fires().WithLabelValues(strings.TrimPrefix(trig.Namespace, "cyclone-"), string(trig.Spec.Type), result).Inc()
}

// observeSCMFire counts the outcome of WebhookServer.fire.
func observeSCMFire(trig *cyclonev1alpha1.WorkflowTrigger, fr firedRun, err error) {
	switch {
	case err != nil:
		observeFire(trig, fireError)
	case fr.Created:
		observeFire(trig, fireStarted)
	default:
		observeFire(trig, fireExisting)
	}
}

// observeDelivery counts a delivery to the SCM trigger webhook once the
// handler has answered; see hookmetrics.Observe.
func observeDelivery(w *http.ResponseWriter, req *http.Request) func() {
	return hookmetrics.Observe(w, "trigger", func() string {
		provider, _, _, err := readEventHeaders(req.Header)
		if err != nil {
			return ""
		}
		return provider
	})
}
