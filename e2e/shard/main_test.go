package shard

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	cluster *testcluster.Cluster
	k8s     client.Client
)

func TestMain(m *testing.M) {
	testcluster.SetLogger()
	// A controller manager binds the tenants' PVCs; a kwok node runs
	// stage Pods.
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, ControllerManager: true, Nodes: 1}, func(c *testcluster.Cluster) error {
		cluster = c
		scheme, err := mgrconfig.NewScheme()
		if err != nil {
			return err
		}
		k8s, err = client.New(c.Config, client.Options{Scheme: scheme})
		return err
	}))
}

// writes records the writes one manager sends to the API server, as
// "METHOD path": which shard touched what, whatever field manager the
// write names.
type writes struct {
	mu  sync.Mutex
	log []string
}

func (w *writes) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet {
			w.mu.Lock()
			w.log = append(w.log, req.Method+" "+req.URL.Path)
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// matching returns the recorded writes whose path contains every part.
func (w *writes) matching(parts ...string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
next:
	for _, l := range w.log {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// reset forgets the writes recorded so far.
func (w *writes) reset() {
	w.mu.Lock()
	w.log = nil
	w.mu.Unlock()
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
