package hookmetrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/hookmetrics"
	"github.com/gyreops/gyre/internal/metricstest"
)

func TestObserve(t *testing.T) {
	for _, tc := range []struct {
		name     string
		handler  func(w http.ResponseWriter)
		provider string
		want     string
	}{
		{"An answer of 202 counts as accepted.", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }, "github", "github/accepted"},
		{"A body written without a status is a 200 and counts as ignored.", func(w http.ResponseWriter) { _, _ = w.Write([]byte("pong")) }, "gitlab", "gitlab/ignored"},
		{"An answer with nothing written at all is a 200 too.", func(http.ResponseWriter) {}, "gitea", "gitea/ignored"},
		{"A 401 counts as unauthorized.", func(w http.ResponseWriter) { w.WriteHeader(http.StatusUnauthorized) }, "bitbucket", "bitbucket/unauthorized"},
		{"A 413 counts as invalid.", func(w http.ResponseWriter) { w.WriteHeader(http.StatusRequestEntityTooLarge) }, "svn", "svn/invalid"},
		{"A 500 counts as an error, of an unknown provider when the headers name none.", func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }, "", "unknown/error"},
		{"Only the first status counts.", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			w.WriteHeader(http.StatusInternalServerError)
		}, "github", "github/accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			match := map[string]string{"endpoint": "test"}
			before, err := metricstest.Series("gyre_webhook_deliveries_total", match)
			g.Expect(err).NotTo(HaveOccurred())
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				defer hookmetrics.Observe(&w, "test", func() string { return tc.provider })()
				tc.handler(w)
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
			after, err := metricstest.Series("gyre_webhook_deliveries_total", match)
			g.Expect(err).NotTo(HaveOccurred())
			provider, result, _ := strings.Cut(tc.want, "/")
			g.Expect(metricstest.Delta(before, after)).To(Equal(map[string]float64{
				metricstest.Key("endpoint", "test", "provider", provider, "result", result): 1,
			}))
		})
	}
}
