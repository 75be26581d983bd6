package receiver_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/receiver"
)

// BenchmarkPushToReady measures what a user waits for: from `git push`
// to the Git server, through the Git server's signed push event to
// gyre's webhook server, the Repository's fetch and the Tenant's render
// and apply, until the Tenant is Ready at the pushed commit. The
// Repository polls once an hour, so only the push event can bring the
// commit in time. It reports the median and the 99th percentile of 20
// pushes. Run it with
//
//	go test ./receiver -run '^$' -bench BenchmarkPushToReady -benchtime 1x
func BenchmarkPushToReady(b *testing.B) {
	const pushes = 20
	g := NewWithT(b)
	f := newPushFixture(b, g)
	tenant := uniqueName("bench-")
	secret := uniqueName("s3cret-")
	first := f.publish(tenant, "0")
	repo := f.newRepository(g, f.cloneURL, f.newSecret(g, secret))
	f.newTenant(g, tenant, repo)
	expectTenantAt(g, tenant, revision(first))
	// The webhook server answers once the manager runs.
	d := pushDelivery(receiver.ProviderGitHub, f.localURLs(), first)
	sendOK(g, func() *http.Request { return d.request(f.hookURL, secret) })

	// What the total is made of: the git push, the webhook's answer, and
	// the fetch, render and apply after it.
	var latencies, pushTimes, answerTimes, readyTimes []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range pushes {
			b.StopTimer()
			f.repo.WriteFile("tenants/"+tenant+"/settings.yaml",
				fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: %q\n", fmt.Sprint(i+1)))
			sha := f.repo.Commit(fmt.Sprintf("settings %d", i+1))
			rev := revision(sha)
			b.StartTimer()

			start := time.Now()
			f.repo.Git("push", "-q", "origin", "main")
			pushed := time.Now()
			code, resp := send(g, pushDelivery(receiver.ProviderGitHub, f.localURLs(), sha).request(f.hookURL, secret))
			answered := time.Now()
			g.Expect(code).To(Equal(http.StatusAccepted), resp.Message)
			g.Eventually(func() (bool, error) { return tenantAt(tenant, rev) }).
				WithTimeout(60 * time.Second).WithPolling(5 * time.Millisecond).Should(BeTrue())
			ready := time.Now()
			latencies = append(latencies, ready.Sub(start))
			readyTimes = append(readyTimes, ready.Sub(answered))
			pushTimes = append(pushTimes, pushed.Sub(start))
			answerTimes = append(answerTimes, answered.Sub(pushed))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(latencies, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(latencies, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(pushTimes, 50)), "git-push-p50-ms")
	b.ReportMetric(ms(percentile(pushTimes, 99)), "git-push-p99-ms")
	b.ReportMetric(ms(percentile(answerTimes, 50)), "webhook-answer-p50-ms")
	b.ReportMetric(ms(percentile(readyTimes, 50)), "answer-to-ready-p50-ms")
	b.ReportMetric(ms(percentile(readyTimes, 99)), "answer-to-ready-p99-ms")
}

// percentile returns the p-th percentile of ds, nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
