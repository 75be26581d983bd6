package pipelines

import (
	"context"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/e2etest"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	cluster *testcluster.Cluster
	k8s     client.WithWatch
	bg      = context.Background()
)

// gcDelay keeps a finished run's Pods a while for a post-mortem when
// GYRE_TEST_GC_DELAY is set (a Go duration).
var gcDelay, _ = time.ParseDuration(os.Getenv("GYRE_TEST_GC_DELAY"))

func TestMain(m *testing.M) {
	testcluster.SetLogger()
	if testcluster.RealNodeUnsupported() != nil {
		// Each test says why it skips, or fails under GYRE_REAL_NODE.
		os.Exit(m.Run())
	}
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, RealNode: true}, func(c *testcluster.Cluster) error {
		cluster = c
		scheme, err := mgrconfig.NewScheme()
		if err != nil {
			return err
		}
		k8s, err = client.NewWithWatch(c.Config, client.Options{Scheme: scheme})
		return err
	}))
}

// startGyre runs gyre on the real node until the end of the test.
func startGyre(t testing.TB) func() {
	return e2etest.StartGyre(t, cluster, manager.Options{Exec: exec.Config{
		RetryBackoff: 500 * time.Millisecond,
		GCDelay:      gcDelay,
	}})
}

// newTenant serves a tenant's pipelines and waits until it is Ready.
func newTenant(t testing.TB, name string, files map[string]string) *e2etest.Tenant {
	return e2etest.NewTenant(t, cluster, k8s, name, files)
}
