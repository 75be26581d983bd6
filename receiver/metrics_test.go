package receiver_test

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/metricstest"
	"github.com/gyreops/gyre/receiver"
)

// series reads a metric's series whose labels include match.
func series(g Gomega, name string, match map[string]string) map[string]float64 {
	got, err := metricstest.Series(name, match)
	g.Expect(err).NotTo(HaveOccurred())
	return got
}

func TestReceiver_metrics(t *testing.T) {
	g := NewWithT(t)
	f := newPushFixture(t, g)
	tenant := uniqueName("metrics-")
	secret := uniqueName("s3cret-")
	first := f.publish(tenant, "one")
	repo := f.newRepository(g, f.cloneURL, f.newSecret(g, secret))
	f.newTenant(g, tenant, repo)
	expectTenantAt(g, tenant, revision(first))
	fetches := func(g Gomega) map[string]float64 {
		return series(g, "gyre_repository_fetch_duration_seconds", map[string]string{"repository": repo.Name})
	}
	g.Expect(fetches(g)).To(Equal(map[string]float64{
		metricstest.Key("repository", repo.Name, "result", "fetched"): 1,
	}), "the first fetch stored the first commit")

	deliveries := func(g Gomega) map[string]float64 {
		return series(g, "gyre_webhook_deliveries_total", map[string]string{"endpoint": "repository"})
	}
	before := deliveries(g)
	second := f.publish(tenant, "two")
	d := pushDelivery(receiver.ProviderGitHub, f.localURLs(), second)
	code, resp := sendOK(g, func() *http.Request { return d.request(f.hookURL, secret) })
	g.Expect(code).To(Equal(http.StatusAccepted), resp.Message)
	code, resp = sendOK(g, func() *http.Request { return d.request(f.hookURL, "not-the-secret") })
	g.Expect(code).To(Equal(http.StatusUnauthorized), resp.Message)
	g.Expect(metricstest.Delta(before, deliveries(g))).To(Equal(map[string]float64{
		metricstest.Key("endpoint", "repository", "provider", "github", "result", "accepted"):     1,
		metricstest.Key("endpoint", "repository", "provider", "github", "result", "unauthorized"): 1,
	}))

	expectTenantAt(g, tenant, revision(second))
	g.Eventually(func(g Gomega) {
		g.Expect(fetches(g)).To(Equal(map[string]float64{
			metricstest.Key("repository", repo.Name, "result", "fetched"): 2,
		}), "the push's fetch stored the second commit")
	}).WithTimeout(10 * time.Second).Should(Succeed())
	renders := series(g, "gyre_tenant_render_duration_seconds", map[string]string{"tenant": tenant})
	g.Expect(renders).To(HaveLen(1))
	g.Expect(renders).To(HaveKeyWithValue(metricstest.Key("target", "default", "tenant", tenant), BeNumerically(">=", 2)),
		"both revisions were rendered for the Tenant's one target")
}
