package trigger

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/metricstest"
)

// fireSeries returns the firing counts of the triggers in ns, by kind and
// result.
func fireSeries(g Gomega, ns string) map[string]float64 {
	got, err := metricstest.Series("gyre_trigger_fires_total", map[string]string{"tenant": ns})
	g.Expect(err).NotTo(HaveOccurred())
	return got
}

// firesKey is the Series key of a firing count of the triggers in ns.
func firesKey(ns, kind, result string) string {
	return metricstest.Key("tenant", ns, "kind", kind, "result", result)
}

func TestCronReconciler_metrics(t *testing.T) {
	g := NewWithT(t)
	ct := newCronTest(t, func(c *cyclonev1alpha1.CronTrigger) { c.ConcurrencyPolicy = cyclonev1alpha1.ConcurrencyForbid })
	ct.reconcile(g)
	g.Expect(fireSeries(g, ct.ns)).To(Equal(map[string]float64{firesKey(ct.ns, "Cron", "started"): 1}),
		"the scheduled hour started a run")

	setPhase(g, ct.ns, ct.runName(0), cyclonev1alpha1.StatusRunning)
	ct.clock.SetTime(ct.at(1))
	ct.reconcile(g)
	g.Expect(fireSeries(g, ct.ns)).To(Equal(map[string]float64{
		firesKey(ct.ns, "Cron", "started"):   1,
		firesKey(ct.ns, "Cron", "forbidden"): 1,
	}), "the next hour was skipped while the first run went on")

	// Another replica started the run of hour 2 already.
	setPhase(g, ct.ns, ct.runName(0), cyclonev1alpha1.StatusSucceeded)
	trig := getTrigger(g, ct.ns, ct.name)
	g.Expect(k8sClient.Create(context.Background(), newRun(trig, ct.runName(2), nil, nil))).To(Succeed())
	ct.clock.SetTime(ct.at(2))
	ct.reconcile(g)
	g.Expect(fireSeries(g, ct.ns)).To(Equal(map[string]float64{
		firesKey(ct.ns, "Cron", "started"):   1,
		firesKey(ct.ns, "Cron", "forbidden"): 1,
		firesKey(ct.ns, "Cron", "existing"):  1,
	}), "the hour another replica had started counts as existing, not as a second start")
}

func TestWebhookServer_metrics(t *testing.T) {
	const uuid = "0b6b7a3c-4f5e-11ef-8c1d-0242ac120002"
	ns, srv := newWebhookTest(t)
	for _, tc := range []struct {
		name           string
		req            func(t *testing.T) *http.Request
		wantDeliveries map[string]float64
		wantFires      map[string]float64
	}{
		{
			name: "A signed GitHub push that starts a run is an accepted delivery and a started SCM firing.",
			req: func(t *testing.T) *http.Request {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push.json"), "good", ""}.request(ns)
			},
			wantDeliveries: map[string]float64{metricstest.Key("endpoint", "trigger", "provider", "github", "result", "accepted"): 1},
			wantFires:      map[string]float64{firesKey(ns, "SCM", "started"): 1},
		},
		{
			name: "The same push delivered again is accepted and counts the run as existing.",
			req: func(t *testing.T) *http.Request {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push.json"), "good", ""}.request(ns)
			},
			wantDeliveries: map[string]float64{metricstest.Key("endpoint", "trigger", "provider", "github", "result", "accepted"): 1},
			wantFires:      map[string]float64{firesKey(ns, "SCM", "existing"): 1},
		},
		{
			name: "A GitLab push with a wrong token is an unauthorized delivery and fires nothing.",
			req: func(t *testing.T) *http.Request {
				return delivery{providerGitLab, "Push Hook", uuid, readPayload(t, "gitlab-push.json"), "bad", ""}.request(ns)
			},
			wantDeliveries: map[string]float64{metricstest.Key("endpoint", "trigger", "provider", "gitlab", "result", "unauthorized"): 1},
			wantFires:      map[string]float64{},
		},
		{
			name: "A signed GitHub push to a branch no trigger watches is ignored.",
			req: func(t *testing.T) *http.Request {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push-feature.json"), "good", ""}.request(ns)
			},
			wantDeliveries: map[string]float64{metricstest.Key("endpoint", "trigger", "provider", "github", "result", "ignored"): 1},
			wantFires:      map[string]float64{},
		},
		{
			name: "A request that names no provider is an invalid delivery of an unknown provider.",
			req: func(t *testing.T) *http.Request {
				return httptest.NewRequest(http.MethodPost, WebhookPath+ns, nil)
			},
			wantDeliveries: map[string]float64{metricstest.Key("endpoint", "trigger", "provider", "unknown", "result", "invalid"): 1},
			wantFires:      map[string]float64{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			before, err := metricstest.Series("gyre_webhook_deliveries_total", nil)
			g.Expect(err).NotTo(HaveOccurred())
			firesBefore := fireSeries(g, ns)
			srv.ServeHTTP(httptest.NewRecorder(), tc.req(t))
			after, err := metricstest.Series("gyre_webhook_deliveries_total", nil)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metricstest.Delta(before, after)).To(Equal(tc.wantDeliveries))
			g.Expect(metricstest.Delta(firesBefore, fireSeries(g, ns))).To(Equal(tc.wantFires))
		})
	}
}
