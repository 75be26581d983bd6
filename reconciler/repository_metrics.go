package reconciler

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gyreops/gyre/source"
)

// Results of a fetch besides a failure's reason, the result label of
// gyre_repository_fetch_duration_seconds.
const (
	// fetchResultFetched: the ref moved and the new commit is stored.
	fetchResultFetched = "fetched"
	// fetchResultUnchanged: the remote listing found the stored commit.
	fetchResultUnchanged = "unchanged"
)

// fetchDuration times Repository fetches. Its labels are bounded: the
// Repository's name (one per Repository, which an operator creates) and
// the result, fetched, unchanged or the failure's condition reason
// (AuthenticationFailed, RefNotFound, FetchFailed, ...); never a URL, ref
// or commit. It is registered once in controller-runtime's process-wide
// registry.
var fetchDuration = sync.OnceValue(func() *prometheus.HistogramVec {
	return register(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gyre_repository_fetch_duration_seconds",
		Help: "Duration of a Repository's fetch: the remote listing, and the fetch and checkout when the ref moved; " +
			"by result (fetched, unchanged, or the failure's reason).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14), // 10 ms .. 80 s
	}, []string{"repository", "result"}))
})

// timedFetch fetches as r.Git.Fetch does and records how long it took and
// how it ended.
func (r *RepositoryReconciler) timedFetch(ctx context.Context, name string, req source.Request, last *source.Artifact) (source.Artifact, bool, error) {
	start := r.now()
	art, fetched, err := r.Git.Fetch(ctx, req, last)
	fetchDuration().WithLabelValues(name, fetchResult(fetched, err)).Observe(r.now().Sub(start).Seconds())
	return art, fetched, err
}

// fetchResult is the result label of a fetch's outcome.
func fetchResult(fetched bool, err error) string {
	switch {
	case err != nil:
		return string(source.ReasonOf(err))
	case fetched:
		return fetchResultFetched
	}
	return fetchResultUnchanged
}

// forgetRepository drops a deleted Repository's series.
func forgetRepository(name string) {
	fetchDuration().DeletePartialMatch(prometheus.Labels{"repository": name})
}
