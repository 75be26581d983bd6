// Package e2etest runs a whole gyre, in the test's process, on a test
// control plane with a real node: a Git repository served where Pods
// reach it, the Repository and Tenant that apply it, and WorkflowRuns.
// The real-node tests of several packages share it.
package e2etest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// StartGyre runs gyre's controllers as `gyre controller` would, until
// the returned stop or the end of the test. Unset options get the tests'
// defaults: no metrics or probe servers, a temporary artifact directory,
// and the busybox image for GC Pods (the node has no registry).
func StartGyre(t testing.TB, c *testcluster.Cluster, opts manager.Options) (stop func()) {
	t.Helper()
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	if opts.ProbeAddr == "" {
		opts.ProbeAddr = "0"
	}
	if opts.ArtifactDir == "" {
		opts.ArtifactDir = t.TempDir()
	}
	if opts.Exec.GCImage == "" {
		opts.Exec.GCImage = testcluster.BusyboxImage
	}
	scheme, err := mgrconfig.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	mopts := opts.Manager(scheme)
	// Tests start gyre more than once in a process.
	mopts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(c.Config, mopts)
	if err != nil {
		t.Fatal(err)
	}
	if err := manager.Setup(mgr, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gyre: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// Tenant is a tenant whose pipelines live in a Git repository of its own.
type Tenant struct {
	*gitserver.Repo
	// Name is the Tenant's name.
	Name string
	// URL is the repository's HTTP URL, which Pods reach.
	URL string
}

// Namespace is the tenant's namespace of Cyclone objects.
func (t *Tenant) Namespace() string { return convention.Namespace(t.Name) }

// Worker is the namespace of the tenant's stage Pods.
func (t *Tenant) Worker() string { return convention.WorkerNamespace(t.Name) }

// NewTenant serves a new Git repository holding files (path → content,
// with {{URL}} replaced by the repository's own URL) under
// tenants/<name>/ on the node's address, creates the Repository and the
// Tenant that apply it and a hostPath PersistentVolume for the Tenant's
// PVC, and waits until every target of the Tenant is Ready.
func NewTenant(t testing.TB, c *testcluster.Cluster, k8s client.Client, name string, files map[string]string) *Tenant {
	t.Helper()
	g := gomega.NewWithT(t)
	ctx := context.Background()
	root := t.TempDir()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{Addr: c.NodeIP + ":0"})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Cleanup(srv.Close)
	tenant := &Tenant{Repo: gitserver.NewRepo(t, root, name+".git"), Name: name, URL: srv.URL + "/" + name + ".git"}
	for path, content := range files {
		tenant.WriteFile("tenants/"+name+"/"+path, strings.ReplaceAll(content, "{{URL}}", tenant.URL))
	}
	tenant.Git("add", "-A")
	tenant.Git("commit", "-qm", "pipelines")
	tenant.Git("push", "-q", "origin", "main")

	// As local-path and NFS provisioners make them: writable to all, since
	// a hostPath volume ignores the Pods' fsGroup.
	pvDir := filepath.Join(t.TempDir(), "pv")
	g.Expect(os.Mkdir(pvDir, 0o777)).To(gomega.Succeed())
	g.Expect(os.Chmod(pvDir, 0o777)).To(gomega.Succeed())
	objs := []client.Object{
		&corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: pvDir, Type: ptr.To(corev1.HostPathDirectory),
				}},
			},
		},
		&gyrev1alpha1.Repository{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: gyrev1alpha1.RepositorySpec{
				URL:      tenant.URL,
				Ref:      &gyrev1alpha1.GitRef{Branch: "main"},
				Interval: &metav1.Duration{Duration: time.Second},
			},
		},
		&gyrev1alpha1.Tenant{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: gyrev1alpha1.TenantSpec{
				RepositoryRef: gyrev1alpha1.ObjectReference{Name: name},
				Storage:       &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
			},
		},
	}
	for _, obj := range objs {
		g.Expect(k8s.Create(ctx, obj)).To(gomega.Succeed())
	}
	g.Eventually(func(g gomega.Gomega) {
		got := &gyrev1alpha1.Tenant{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, got)).To(gomega.Succeed())
		g.Expect(got.Status.Targets).NotTo(gomega.BeEmpty())
		for _, target := range got.Status.Targets {
			ready := false
			for _, cond := range target.Conditions {
				if cond.Type == "Ready" {
					ready = cond.Status == metav1.ConditionTrue
					g.Expect(ready).To(gomega.BeTrue(), "target %s: %s", target.Cluster, cond.Message)
				}
			}
			g.Expect(ready).To(gomega.BeTrue())
		}
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(gomega.Succeed())
	return tenant
}

// StartRun creates a WorkflowRun of workflow in the tenant's namespace.
func (t *Tenant) StartRun(g gomega.Gomega, k8s client.Client, name, workflow string) *cyclonev1alpha1.WorkflowRun {
	return StartRun(g, k8s, t.Namespace(), name, workflow)
}

// StartRun creates a WorkflowRun of workflow in namespace ns, with a
// timeout of five minutes.
func StartRun(g gomega.Gomega, k8s client.Client, ns, name, workflow string) *cyclonev1alpha1.WorkflowRun {
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			WorkflowRef: &corev1.ObjectReference{Kind: "workflow.cyclone.dev", Name: workflow},
			Timeout:     "5m",
		},
	}
	g.Expect(k8s.Create(context.Background(), run)).To(gomega.Succeed())
	return run
}

// WaitFinished waits until run has ended and its GC Pod has removed its
// data, and returns it as it then is.
func WaitFinished(g gomega.Gomega, k8s client.Client, run *cyclonev1alpha1.WorkflowRun) *cyclonev1alpha1.WorkflowRun {
	got := &cyclonev1alpha1.WorkflowRun{}
	g.Eventually(func(g gomega.Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(run), got)).To(gomega.Succeed())
		g.Expect(got.Status.Overall.Phase).To(gomega.BeElementOf(cyclonev1alpha1.StatusSucceeded, cyclonev1alpha1.StatusFailed, cyclonev1alpha1.StatusCancelled),
			"overall %+v", got.Status.Overall)
		g.Expect(got.Status.Cleaned).To(gomega.BeTrue(), "the GC Pod has removed the run's data")
	}).WithTimeout(3 * time.Minute).WithPolling(250 * time.Millisecond).Should(gomega.Succeed())
	return got
}
