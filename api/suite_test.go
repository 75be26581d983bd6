package api_test

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	scheme    = runtime.NewScheme()
	k8sClient client.Client
)

func TestMain(m *testing.M) {
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cyclonev1alpha1.AddToScheme, gyrev1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) (err error) {
		k8sClient, err = client.New(c.Config, client.Options{Scheme: scheme})
		return err
	}))
}
