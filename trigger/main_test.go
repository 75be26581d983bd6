package trigger

import (
	"context"
	"os"
	"testing"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	scheme    = runtime.NewScheme()
	restCfg   *rest.Config
	k8sClient client.Client
)

func TestMain(m *testing.M) {
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cyclonev1alpha1.AddToScheme, gyrev1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// The reconcilers log through controller-runtime; the tests read
	// status and events instead.
	ctrl.SetLogger(logr.Discard())
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) (err error) {
		// The benchmarks create thousands of objects; client-go's default
		// rate limit would measure itself.
		restCfg = rest.CopyConfig(c.Config)
		restCfg.QPS, restCfg.Burst = 5000, 10000
		k8sClient, err = newClient()
		return err
	}))
}

// newClient returns a client of its own, as a second replica would have.
func newClient() (client.Client, error) {
	return client.New(restCfg, client.Options{Scheme: scheme})
}

// newNamespace makes a namespace for one test and removes it after.
func newNamespace(t testing.TB) string {
	t.Helper()
	return testcluster.NewNamespace(t, k8sClient, "trigger-test-")
}

// listRuns lists the runs in ns, by name.
func listRuns(g Gomega, ns string) map[string]cyclonev1alpha1.WorkflowRun {
	var list cyclonev1alpha1.WorkflowRunList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	runs := map[string]cyclonev1alpha1.WorkflowRun{}
	for _, r := range list.Items {
		runs[r.Name] = r
	}
	return runs
}

// getTrigger reads a trigger back.
func getTrigger(g Gomega, ns, name string) *cyclonev1alpha1.WorkflowTrigger {
	trig := &cyclonev1alpha1.WorkflowTrigger{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, trig)).To(Succeed())
	return trig
}

// metricsserverOff keeps test managers off the metrics port.
var metricsserverOff = metricsserver.Options{BindAddress: "0"}
