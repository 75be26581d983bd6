package manager

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// testEnv is the control plane every test of the package shares.
var testEnv struct {
	Config *rest.Config
	Scheme *runtime.Scheme
	Client client.Client
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) (err error) {
		if testEnv.Scheme, err = mgrconfig.NewScheme(); err != nil {
			return err
		}
		testEnv.Config = c.Config
		testEnv.Client, err = client.New(c.Config, client.Options{Scheme: testEnv.Scheme})
		return err
	}))
}

// startManager runs mgr until the test ends.
func startManager(t testing.TB, mgr ctrl.Manager) { testcluster.StartManager(t, mgr) }

// newNamespace creates a namespace for one test and deletes it after.
func newNamespace(t testing.TB) string {
	t.Helper()
	return testcluster.NewNamespace(t, testEnv.Client, "gyre-test-")
}

// deleteAtCleanup deletes obj when the test ends.
func deleteAtCleanup(t testing.TB, obj client.Object) {
	testcluster.DeleteAtCleanup(t, testEnv.Client, obj)
}

// eventually is gomega's Eventually with the suite's patience.
func eventually(g *WithT, f func(g Gomega)) {
	g.Eventually(f).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

func get(g Gomega, obj *gyrev1alpha1.Repository) *gyrev1alpha1.Repository {
	got := &gyrev1alpha1.Repository{}
	g.Expect(testEnv.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), got)).To(Succeed())
	return got
}

func readyOf(r *gyrev1alpha1.Repository) *metav1.Condition {
	return apimeta.FindStatusCondition(r.Status.Conditions, meta.ReadyCondition)
}
