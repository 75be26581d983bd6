package agent

import (
	"context"
	"flag"
	"fmt"
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
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := cyclonev1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	var err error
	env, err = testcluster.Start(context.Background(), testcluster.Options{Nodes: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	if k8s, err = client.NewWithWatch(env.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if pods, err = kubernetes.NewForConfig(env.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// requireCluster skips a test in -short mode, where no cluster runs.
func requireCluster(t testing.TB) {
	t.Helper()
	if env == nil {
		t.Skip("needs the test control plane; not started in -short mode")
	}
}
