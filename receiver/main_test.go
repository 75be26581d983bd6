package receiver_test

import (
	"os"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// testEnv is the control plane every test of the package shares.
var testEnv struct {
	Config *rest.Config
	Scheme *runtime.Scheme
	// Client reads and writes directly, without a cache, so a test sees
	// its own writes at once.
	Client client.Client
}

func TestMain(m *testing.M) {
	// Controller logs help when a test fails; GYRE_TEST_LOG=1 shows them.
	if os.Getenv("GYRE_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) error {
		scheme, err := mgrconfig.NewScheme()
		if err != nil {
			return err
		}
		testEnv.Config, testEnv.Scheme = c.Config, scheme
		testEnv.Client, err = client.New(c.Config, client.Options{Scheme: scheme})
		return err
	}))
}
