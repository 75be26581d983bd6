package reconciler

import (
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// testEnv is the control plane every test of the package shares.
var testEnv struct {
	Cluster *testcluster.Cluster
	Config  *rest.Config
	Scheme  *runtime.Scheme
	// Client reads and writes directly, without a cache, so a test sees
	// its own writes at once.
	Client client.Client
}

func TestMain(m *testing.M) {
	testcluster.SetLogger()
	if os.Getenv(neighbourChildEnv) != "" {
		// A benchmark's neighbour, which needs no control plane.
		os.Exit(m.Run())
	}
	if os.Getenv(benchChildEnv) != "" {
		// A benchmark's child process, on its parent's control plane.
		if err := connectBenchChild(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	// A scheduler and a kwok node, whose Pods succeed, let the engine run
	// the WorkflowRuns a Tenant applies.
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, Nodes: 1, PodsSucceedByDefault: true}, func(c *testcluster.Cluster) (err error) {
		if testEnv.Scheme, err = mgrconfig.NewScheme(); err != nil {
			return err
		}
		testEnv.Cluster, testEnv.Config = c, c.Config
		testEnv.Client, err = client.New(c.Config, client.Options{Scheme: testEnv.Scheme})
		return err
	}))
}

// newManager builds a manager the way `gyre controller` does, with its
// servers off. Tests register their own reconcilers, so controller name
// validation, which is process-wide, is off too.
func newManager(t testing.TB) ctrl.Manager {
	t.Helper()
	testcluster.Require(t)
	opts := mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0"}.Manager(testEnv.Scheme)
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(testEnv.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

// startManager runs mgr until the test ends.
func startManager(t testing.TB, mgr ctrl.Manager) { testcluster.StartManager(t, mgr) }

// newNamespace creates a namespace for one test and deletes it after.
func newNamespace(t testing.TB) string {
	t.Helper()
	return testcluster.NewNamespace(t, testEnv.Client, "gyre-test-")
}

// deleteAtCleanup deletes obj when the test ends, so cluster-scoped
// objects do not outlive it.
func deleteAtCleanup(t testing.TB, obj client.Object) {
	testcluster.DeleteAtCleanup(t, testEnv.Client, obj)
}

// eventually is gomega's Eventually with the suite's patience.
func eventually(g *WithT, f func(g Gomega)) {
	g.Eventually(f).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}
