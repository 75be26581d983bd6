package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/reconciler"
	"github.com/gyreops/gyre/source"
)

// TestDiff_liveAgreesWithTheController applies the sandbox tenant with
// the real tenant reconciler, then diffs the same commit against the
// cluster: nothing may show as changed. A commit that changes a Stage
// then shows exactly that change.
func TestDiff_liveAgreesWithTheController(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane; -short starts none")
	}
	g := NewWithT(t)
	ctx := context.Background()
	cluster, err := testcluster.Start(ctx, testcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = cluster.Stop() })
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "example.git")
	repo.CopyDir(exampleRepo)
	repo.Commit("the example")
	repo.Push()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	git := &source.Git{CacheDir: t.TempDir()}
	repoObj := &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{Name: "example"},
		Spec:       gyrev1alpha1.RepositorySpec{URL: srv.URL + "/example.git", Interval: &metav1.Duration{Duration: time.Hour}, Suspend: true},
	}
	g.Expect(c.Create(ctx, repoObj)).To(Succeed())
	art, _, err := git.Fetch(ctx, source.Request{Name: repoObj.Name, URL: repoObj.Spec.URL}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	repoObj.Status.Artifact = &gyrev1alpha1.Artifact{Revision: art.Revision, Digest: art.Digest, LastUpdateTime: metav1.Now()}
	g.Expect(c.Status().Update(ctx, repoObj)).To(Succeed())

	opts := mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0"}.Manager(scheme)
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(cluster.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect((&reconciler.TenantReconciler{Artifacts: reconciler.StoreArtifacts{Store: git.Store()}}).SetupWithManager(mgr)).To(Succeed())
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	tenant := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox"},
		Spec:       gyrev1alpha1.TenantSpec{RepositoryRef: gyrev1alpha1.ObjectReference{Name: repoObj.Name}, Interval: &metav1.Duration{Duration: time.Hour}},
	}
	g.Expect(c.Create(ctx, tenant)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(tenant), tenant)).To(Succeed())
		g.Expect(apimeta.IsStatusConditionTrue(tenant.Status.Conditions, meta.ReadyCondition)).To(BeTrue(), "%v", tenant.Status.Conditions)
		g.Expect(tenant.Status.LastAppliedRevision).To(Equal(art.Revision))
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// sandbox returns the sandbox target's changes; nil when it has none,
	// as the diff lists only targets that changed.
	sandbox := func(g *WithT) *targetDiff {
		stdout, stderr, _ := execute(t, "diff", "--live", "--kubeconfig", cluster.Kubeconfig, "-o", "json", repo.Work)
		g.Expect(stderr).To(BeEmpty())
		var d repoDiff
		g.Expect(json.Unmarshal([]byte(stdout), &d)).To(Succeed())
		for i := range d.Targets {
			if d.Targets[i].Tenant == "sandbox" {
				return &d.Targets[i]
			}
		}
		return nil
	}

	t.Run("The commit the controller applied shows no change.", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(sandbox(g)).To(BeNil())
	})

	t.Run("A commit that changes a Stage shows that Stage changed, and nothing else.", func(t *testing.T) {
		g := NewWithT(t)
		p := filepath.Join("tenants", "sandbox", "pipeline.yaml")
		content := repo.Git("show", "HEAD:"+filepath.ToSlash(p))
		repo.WriteFile(p, strings.Replace(content, "image: busybox:1.37", "image: busybox:1.38", 1)+"\n")
		repo.Commit("a newer busybox")
		d := sandbox(g)
		g.Expect(d).NotTo(BeNil())
		g.Expect(d.Added).To(BeEmpty())
		g.Expect(d.Removed).To(BeEmpty())
		g.Expect(d.Changed).To(ConsistOf(HaveField("ID", "Stage/hello")))
		g.Expect(d.Changed[0].Diff).To(ContainSubstring("+        image: busybox:1.38"))
	})
}
