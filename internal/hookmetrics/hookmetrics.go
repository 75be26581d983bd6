// Package hookmetrics counts the webhook deliveries gyre's webhook server
// takes, by endpoint, provider and result, as the sender saw the answer.
package hookmetrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results of a delivery, from the status code of the answer.
const (
	// Accepted: the delivery started runs or fetches (202).
	Accepted = "accepted"
	// Ignored: authentic, but nothing to do for it (200, such as a ping).
	Ignored = "ignored"
	// Unauthorized: nothing the delivery names accepts its signature (401).
	Unauthorized = "unauthorized"
	// Invalid: not an event gyre takes: wrong method, path, headers or
	// body, or a body over the limit (other 4xx).
	Invalid = "invalid"
	// Error: gyre could not act on it; the sender should redeliver (5xx).
	Error = "error"
)

// UnknownProvider is the provider of a delivery whose headers name none
// gyre knows.
const UnknownProvider = "unknown"

// deliveries is registered once in controller-runtime's registry, which
// is process-wide: every handler of a process counts into it.
var deliveries = sync.OnceValue(func() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gyre_webhook_deliveries_total",
		Help: "Webhook deliveries by endpoint (trigger, repository), provider and result " +
			"(accepted, ignored, unauthorized, invalid, error). Labels are bounded: never a repository, namespace or delivery id.",
	}, []string{"endpoint", "provider", "result"})
	metrics.Registry.MustRegister(c)
	return c
})

// Observe wraps *w to see the answer's status code and returns the
// function that counts the delivery once the handler has answered: a
// handler calls it as `defer hookmetrics.Observe(&w, endpoint, provider)()`.
// provider names the delivery's provider from its headers, or "" when
// they name none; it is called after the handler, whose answer it cannot
// change.
func Observe(w *http.ResponseWriter, endpoint string, provider func() string) func() {
	sw := &statusWriter{ResponseWriter: *w}
	*w = sw
	return func() {
		p := provider()
		if p == "" {
			p = UnknownProvider
		}
		deliveries().WithLabelValues(endpoint, p, Result(sw.status())).Inc()
	}
}

// Result is the result of a delivery answered with status code.
func Result(code int) string {
	switch {
	case code == http.StatusAccepted:
		return Accepted
	case code == http.StatusUnauthorized:
		return Unauthorized
	case code >= 500:
		return Error
	case code >= 400:
		return Invalid
	}
	return Ignored
}

// statusWriter remembers the status code of the answer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the code the client got: 200 when the handler wrote none.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
