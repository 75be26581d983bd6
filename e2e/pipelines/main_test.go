package pipelines

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/reconciler"
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
	// Controller logs help when a test fails; GYRE_TEST_LOG=1 shows them.
	if os.Getenv("GYRE_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	if testcluster.RealNodeUnsupported() != nil {
		// Each test says why it skips, or fails under GYRE_REAL_NODE.
		os.Exit(m.Run())
	}
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, RealNode: true}, func(c *testcluster.Cluster) error {
		cluster = c
		scheme, err := reconciler.NewScheme()
		if err != nil {
			return err
		}
		k8s, err = client.NewWithWatch(c.Config, client.Options{Scheme: scheme})
		return err
	}))
}

// gyre is a running gyre, in this process, on the real node.
type gyre struct {
	stop func()
}

// startGyre runs gyre's controllers as `gyre controller` would, with the
// busybox image for GC Pods (the node has no registry to pull one from),
// until stop or the end of the test.
func startGyre(t testing.TB) *gyre {
	t.Helper()
	scheme, err := reconciler.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	opts := reconciler.Options{
		MetricsAddr: "0",
		ProbeAddr:   "0",
		ArtifactDir: t.TempDir(),
		Exec: exec.Config{
			GCImage:      testcluster.BusyboxImage,
			RetryBackoff: 500 * time.Millisecond,
			GCDelay:      gcDelay,
		},
	}
	mopts := reconciler.ManagerOptions(scheme, opts)
	mopts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(cluster.Config, mopts)
	if err != nil {
		t.Fatal(err)
	}
	if err := reconciler.Setup(mgr, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	g := &gyre{}
	stopped := false
	g.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gyre: %v", err)
		}
	}
	t.Cleanup(g.stop)
	return g
}

// tenantRepo is a Git repository served where Pods reach it, holding one
// tenant's pipelines, and the Repository and Tenant that apply it.
type tenantRepo struct {
	*gitserver.Repo
	// URL is the repository's HTTP URL, reachable from Pods.
	URL    string
	tenant string
}

// newTenant serves a new Git repository with files (path → content, with
// {{URL}} replaced by the repository's own URL) under tenants/<name>/, and
// creates a Repository and a Tenant with a PVC on a hostPath
// PersistentVolume, then waits until the Tenant is Ready.
func newTenant(t testing.TB, name string, files map[string]string) *tenantRepo {
	t.Helper()
	g := NewWithT(t)
	root := t.TempDir()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{Addr: cluster.NodeIP + ":0"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	repo := gitserver.NewRepo(t, root, name+".git")
	r := &tenantRepo{Repo: repo, URL: srv.URL + "/" + name + ".git", tenant: name}
	for path, content := range files {
		repo.WriteFile("tenants/"+name+"/"+path, strings.ReplaceAll(content, "{{URL}}", r.URL))
	}
	repo.Git("add", "-A")
	repo.Git("commit", "-qm", "pipelines")
	repo.Git("push", "-q", "origin", "main")

	// As local-path and NFS provisioners make them: writable to all, since
	// a hostPath volume ignores the Pod's fsGroup.
	pvDir := filepath.Join(t.TempDir(), "pv")
	g.Expect(os.Mkdir(pvDir, 0o777)).To(Succeed())
	g.Expect(os.Chmod(pvDir, 0o777)).To(Succeed())
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: pvDir,
				Type: ptr.To(corev1.HostPathDirectory),
			}},
		},
	}
	repository := &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.RepositorySpec{
			URL:      r.URL,
			Ref:      &gyrev1alpha1.GitRef{Branch: "main"},
			Interval: &metav1.Duration{Duration: time.Second},
		},
	}
	tenant := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: name},
			Storage:       &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
		},
	}
	for _, obj := range []client.Object{pv, repository, tenant} {
		g.Expect(k8s.Create(bg, obj)).To(Succeed())
	}
	t.Cleanup(func() {
		for _, obj := range []client.Object{tenant, repository, pv} {
			_ = k8s.Delete(bg, obj)
		}
	})
	g.Eventually(func(g Gomega) {
		got := &gyrev1alpha1.Tenant{}
		g.Expect(k8s.Get(bg, client.ObjectKey{Name: name}, got)).To(Succeed())
		g.Expect(got.Status.Targets).NotTo(BeEmpty())
		for _, target := range got.Status.Targets {
			ready := false
			for _, c := range target.Conditions {
				if c.Type == "Ready" {
					ready = c.Status == metav1.ConditionTrue
					g.Expect(ready).To(BeTrue(), "target %s: %s", target.Cluster, c.Message)
				}
			}
			g.Expect(ready).To(BeTrue())
		}
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	return r
}

// namespace is the tenant's namespace of Cyclone objects; worker is
// where its stage Pods run.
func (r *tenantRepo) namespace() string { return "cyclone-" + r.tenant }
func (r *tenantRepo) worker() string    { return "cyclone-" + r.tenant + "-worker" }
