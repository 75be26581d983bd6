package receiver_test

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	testcluster.SetLogger()
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
