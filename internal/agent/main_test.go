package agent

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	// env is the API server (with kwok running the Pods) every
	// coordinator test shares; each test works in its own namespace.
	env    *testcluster.Cluster
	scheme = runtime.NewScheme()
	k8s    client.WithWatch
	pods   kubernetes.Interface
)

func TestMain(m *testing.M) {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := cyclonev1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Nodes: 1}, func(c *testcluster.Cluster) (err error) {
		env = c
		if k8s, err = client.NewWithWatch(c.Config, client.Options{Scheme: scheme}); err != nil {
			return err
		}
		pods, err = kubernetes.NewForConfig(c.Config)
		return err
	}))
}

// requireCluster skips a test in -short mode, where no cluster runs.
func requireCluster(t testing.TB) {
	t.Helper()
	if env == nil {
		t.Skip("needs the test control plane; not started in -short mode")
	}
}
