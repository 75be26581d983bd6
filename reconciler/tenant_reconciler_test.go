package reconciler

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/source"
	"github.com/gyreops/gyre/tenants"
)

// writeCounter counts the write requests a client sends: every request
// but reads, server-side dry-runs (gyre's diffs) and Events.
type writeCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []string
	// requests counts every request, reads included.
	requests atomic.Int64
	// kinds counts every request by method and resource, when set.
	kinds map[string]int
	// listings are the paths of the listings of one namespace's
	// objects, watches aside.
	listings []string
	// firstApply and lastApply are when the first and the last object
	// apply (a PATCH of neither a status nor a lease) was sent, in Unix
	// nanoseconds, 0 before any.
	firstApply, lastApply atomic.Int64
}

func (w *writeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	w.requests.Add(1)
	w.mu.Lock()
	if w.kinds != nil {
		w.kinds[requestKind(req)]++
	}
	if isNamespaceListing(req) {
		w.listings = append(w.listings, req.URL.Path)
	}
	w.mu.Unlock()
	if req.Method == http.MethodPatch && !strings.HasSuffix(req.URL.Path, "/status") && !strings.Contains(req.URL.Path, "/leases/") {
		now := time.Now().UnixNano()
		w.firstApply.CompareAndSwap(0, now)
		w.lastApply.Store(now)
	}
	if isWrite(req) {
		w.mu.Lock()
		w.log = append(w.log, req.Method+" "+req.URL.Path)
		w.mu.Unlock()
	}
	return w.next.RoundTrip(req)
}

func isWrite(req *http.Request) bool {
	switch {
	case req.Method == http.MethodGet || req.Method == http.MethodHead:
		return false
	case req.URL.Query().Get("dryRun") != "":
		return false
	case strings.Contains(req.URL.Path, "/events"):
		return false
	}
	return true
}

// isNamespaceListing reports whether req lists the objects of a kind in
// one namespace: /api/v1/namespaces/NS/KIND or
// /apis/GROUP/VERSION/namespaces/NS/KIND.
func isNamespaceListing(req *http.Request) bool {
	if req.Method != http.MethodGet || req.URL.Query().Get("watch") != "" {
		return false
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if len(parts) > 0 && parts[0] == "apis" {
		parts = parts[1:] // the group
	}
	return len(parts) == 5 && parts[2] == "namespaces"
}

// takeListings returns the namespace listings counted since the last
// takeListings.
func (w *writeCounter) takeListings() []string { return w.drain(&w.listings) }

// take returns the writes counted since the last take.
func (w *writeCounter) take() []string { return w.drain(&w.log) }

// drain empties one of w's records and returns what it held.
func (w *writeCounter) drain(record *[]string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := *record
	*record = nil
	return out
}

// countingConfig returns a copy of cfg whose requests w counts.
func countingConfig(cfg *rest.Config, w *writeCounter) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { w.next = rt; return w })
	return c
}

// tenantFixture is a Git remote, a Repository whose status the test sets
// from real fetches, an execution cluster and a running tenant reconciler.
type tenantFixture struct {
	t       *testing.T
	repo    *gitserver.Repo
	srv     *gitserver.HTTPServer
	git     *source.Git
	repoObj *gyrev1alpha1.Repository
	far     *testcluster.Cluster
	farC    client.Client
	writes  *writeCounter
	stop    func()
	// engine, when set, is added to the manager start builds.
	engine func(ctrl.Manager) error
}

func newTenantFixture(t *testing.T, g *WithT) *tenantFixture {
	ctx := context.Background()
	root := t.TempDir()
	f := &tenantFixture{t: t, repo: gitserver.NewRepo(t, root, "pipelines.git"), git: &source.Git{CacheDir: t.TempDir()}}
	var err error
	f.srv, err = gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(f.srv.Close)

	// The execution cluster runs kube-controller-manager, so namespaces
	// deleted there finalise and the test can see them go.
	f.far, err = testcluster.Start(ctx, testcluster.Options{ControllerManager: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = f.far.Stop() })
	f.farC, err = client.New(f.far.Config, client.Options{Scheme: testEnv.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := os.ReadFile(f.far.Kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	// A kubeconfig read from disk may name files; the Secret holds it
	// flattened, as gyre requires.
	raw, err := clientcmd.Load(kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(clientcmdapi.FlattenConfig(raw)).To(Succeed())
	kubeconfig, err = clientcmd.Write(*raw)
	g.Expect(err).NotTo(HaveOccurred())

	ns := newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "far-kubeconfig", Namespace: ns}, Data: map[string][]byte{"value": kubeconfig}}
	g.Expect(testEnv.Client.Create(ctx, secret)).To(Succeed())
	ec := &cyclonev1alpha1.ExecutionCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "far"},
		Spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: &cyclonev1alpha1.SecretKeyReference{Name: secret.Name, Namespace: ns}},
	}
	g.Expect(testEnv.Client.Create(ctx, ec)).To(Succeed())
	deleteAtCleanup(t, ec)

	f.repo.CopyDir(filepath.Join("testdata", "tenant-repo"))
	f.repo.Commit("two tenants, two clusters each")
	f.repo.Push()
	f.repoObj = &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "pipelines-"},
		Spec:       gyrev1alpha1.RepositorySpec{URL: f.srv.URL + "/pipelines.git", Interval: &metav1.Duration{Duration: time.Hour}, Suspend: true},
	}
	g.Expect(testEnv.Client.Create(ctx, f.repoObj)).To(Succeed())
	deleteAtCleanup(t, f.repoObj)
	f.writes = &writeCounter{}
	return f
}

// publish commits, pushes, fetches the new commit through the Git server
// and sets it as the Repository's artifact, the way the Repository
// reconciler would. It returns the revision.
func (f *tenantFixture) publish(g *WithT, msg string) string {
	f.repo.Commit(msg)
	f.repo.Push()
	art, _, err := f.git.Fetch(context.Background(), source.Request{Name: f.repoObj.Name, URL: f.repoObj.Spec.URL}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	repo := &gyrev1alpha1.Repository{}
	g.Expect(testEnv.Client.Get(context.Background(), client.ObjectKeyFromObject(f.repoObj), repo)).To(Succeed())
	repo.Status.Artifact = &gyrev1alpha1.Artifact{Revision: art.Revision, Digest: art.Digest, LastUpdateTime: metav1.Now()}
	g.Expect(testEnv.Client.Status().Update(context.Background(), repo)).To(Succeed())
	return art.Revision
}

// ignore sets the Repository's spec.ignore and the artifact of its
// current commit checked out under it, the way the Repository reconciler
// would: the revision stays, the directory and digest change.
func (f *tenantFixture) ignore(g *WithT, ignore string) {
	ctx := context.Background()
	repo := &gyrev1alpha1.Repository{}
	g.Expect(testEnv.Client.Get(ctx, client.ObjectKeyFromObject(f.repoObj), repo)).To(Succeed())
	repo.Spec.Ignore = &ignore
	g.Expect(testEnv.Client.Update(ctx, repo)).To(Succeed())
	art, _, err := f.git.Fetch(ctx, source.Request{Name: repo.Name, URL: repo.Spec.URL, Ignore: ignore}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(art.Revision).To(Equal(repo.Status.Artifact.Revision))
	repo.Status.Artifact = &gyrev1alpha1.Artifact{Revision: art.Revision, Digest: art.Digest, LastUpdateTime: metav1.Now()}
	g.Expect(testEnv.Client.Status().Update(ctx, repo)).To(Succeed())
}

// start runs a tenant reconciler in a manager built like `gyre
// controller`'s, whose requests f.writes counts.
func (f *tenantFixture) start(g *WithT) {
	opts := mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0"}.Manager(testEnv.Scheme)
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(countingConfig(testEnv.Config, f.writes), opts)
	g.Expect(err).NotTo(HaveOccurred())
	rec := &TenantReconciler{Artifacts: StoreArtifacts{Store: f.git.Store()}}
	g.Expect(rec.SetupWithManager(mgr)).To(Succeed())
	if f.engine != nil {
		g.Expect(f.engine(mgr)).To(Succeed())
	}
	rec.Clusters.WrapConfig = func(c *rest.Config) {
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &writeCounter{next: rt} })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	f.stop = func() {
		cancel()
		g.Expect(<-done).To(Succeed())
		f.stop = nil
	}
	f.t.Cleanup(func() {
		if f.stop != nil {
			f.stop()
		}
	})
}

func (f *tenantFixture) createTenant(g *WithT, name string) *gyrev1alpha1.Tenant {
	t := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: f.repoObj.Name},
			Clusters: []gyrev1alpha1.TenantCluster{
				{Name: "one"},
				{Name: "two", ExecutionClusterRef: &gyrev1alpha1.ObjectReference{Name: "far"}},
			},
			Quota: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("20")},
			// Only watches may correct drift during the test.
			Interval: &metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(testEnv.Client.Create(context.Background(), t)).To(Succeed())
	f.t.Cleanup(func() {
		_ = client.IgnoreNotFound(testEnv.Client.Delete(context.Background(), t))
	})
	return t
}

func getTenant(g Gomega, name string) *gyrev1alpha1.Tenant {
	t := &gyrev1alpha1.Tenant{}
	g.Expect(testEnv.Client.Get(context.Background(), client.ObjectKey{Name: name}, t)).To(Succeed())
	return t
}

// expectApplied waits until every target of the tenant applied revision.
func expectApplied(g *WithT, name, revision string) {
	g.Eventually(func(g Gomega) {
		t := getTenant(g, name)
		g.Expect(apimeta.IsStatusConditionTrue(t.Status.Conditions, meta.ReadyCondition)).To(BeTrue(), "tenant %s: %v", name, t.Status.Conditions)
		g.Expect(t.Status.LastAppliedRevision).To(Equal(revision))
		g.Expect(t.Status.ObservedGeneration).To(Equal(t.Generation))
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func getStage(g Gomega, tenant, name string) (*cyclonev1alpha1.Stage, error) {
	s := &cyclonev1alpha1.Stage{}
	err := testEnv.Client.Get(context.Background(), client.ObjectKey{Namespace: "cyclone-" + tenant, Name: name}, s)
	return s, err
}

func image(s *cyclonev1alpha1.Stage) string {
	if s.Spec.Pod == nil || len(s.Spec.Pod.Spec.Containers) == 0 {
		return ""
	}
	return s.Spec.Pod.Spec.Containers[0].Image
}

func TestTenantReconciler(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	f := newTenantFixture(t, g)
	rev := f.publish(g, "initial")
	f.start(g)
	f.createTenant(g, "alpha")
	f.createTenant(g, "beta")

	t.Run("Every target of both tenants is applied into the tenant's namespace, labelled.", func(t *testing.T) {
		g := NewWithT(t)
		for _, name := range []string{"alpha", "beta"} {
			expectApplied(g, name, rev)
			tn := getTenant(g, name)
			g.Expect(tn.Status.Objects).To(Equal(6))
			g.Expect(tn.Status.Targets).To(HaveLen(2))
			for _, target := range []string{"one", "two"} {
				s, err := getStage(g, name, "build-"+target)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.Labels).To(HaveKeyWithValue(convention.TenantLabel, name))
				g.Expect(s.Labels).To(HaveKeyWithValue(convention.TargetLabel, target))
				cm := &corev1.ConfigMap{}
				g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-" + name, Name: "settings-" + target}, cm)).To(Succeed())
				g.Expect(cm.Data).To(HaveKeyWithValue("team", name))
			}
			st := targetStatus(tn, "one")
			g.Expect(st.Inventory.Entries).To(ContainElement(gyrev1alpha1.InventoryEntry{ID: "cyclone-" + name + "_build-one_cyclone.dev_Stage", Version: "v1alpha1"}))
			// Worker namespaces: target one runs on the control cluster,
			// target two on the execution cluster.
			g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-" + name + "-worker", Name: tenants.QuotaName}, &corev1.ResourceQuota{})).To(Succeed())
			g.Expect(f.farC.Get(ctx, client.ObjectKey{Namespace: "cyclone-" + name + "-worker", Name: tenants.QuotaName}, &corev1.ResourceQuota{})).To(Succeed())
			g.Expect(f.farC.Get(ctx, client.ObjectKey{Namespace: "cyclone-" + name + "-worker", Name: convention.WorkerServiceAccount}, &corev1.ServiceAccount{})).To(Succeed())
		}
	})

	t.Run("A commit that edits, adds and removes files is applied and pruned.", func(t *testing.T) {
		g := NewWithT(t)
		settle(f)
		f.writes.take()
		for _, name := range []string{"alpha", "beta"} {
			base := "tenants/" + name + "/base/"
			f.repo.WriteFile(base+"stages.yaml", buildStage("golang:1.28"))
			f.repo.WriteFile(base+"extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  added: \"yes\"\n")
			f.repo.WriteFile(base+"kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- stages.yaml\n- settings.yaml\n- extra.yaml\n")
		}
		// alpha's test-one opts out of pruning in the cluster.
		kept, err := getStage(g, "alpha", "test-one")
		g.Expect(err).NotTo(HaveOccurred())
		kept.Annotations[convention.PruneAnnotation] = convention.PruneDisabled
		g.Expect(testEnv.Client.Update(ctx, kept)).To(Succeed())
		rev = f.publish(g, "edit build, add extra, remove test")
		for _, name := range []string{"alpha", "beta"} {
			expectApplied(g, name, rev)
			for _, target := range []string{"one", "two"} {
				s, err := getStage(g, name, "build-"+target)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(image(s)).To(Equal("golang:1.28"))
				_, err = getStage(g, name, "test-"+target)
				if name == "alpha" && target == "one" {
					g.Expect(err).NotTo(HaveOccurred(), "gyre.dev/prune: disabled keeps test-one")
				} else {
					g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "test-%s pruned", target)
				}
				g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-" + name, Name: "extra-" + target}, &corev1.ConfigMap{})).To(Succeed())
			}
			tn := getTenant(g, name)
			g.Expect(tn.Status.Objects).To(Equal(6), "the kept Stage left the inventory")
		}
		// A Tenant's status holds every target's inventory, so each write
		// of it is costly: one shows the new revision in progress, one
		// records the outcome. The reconciles that the prunes' deletions
		// trigger find the status as written and send nothing (not even a
		// request that a stale read would make fail with a conflict).
		settle(f)
		statusWrites := map[string]int{}
		for _, w := range f.writes.take() {
			if strings.HasSuffix(w, "/status") && strings.Contains(w, "/tenants/") {
				statusWrites[w]++
			}
		}
		g.Expect(statusWrites).To(Equal(map[string]int{
			"PATCH /apis/gyre.dev/v1alpha1/tenants/alpha/status": 2,
			"PATCH /apis/gyre.dev/v1alpha1/tenants/beta/status":  2,
		}))
	})

	t.Run("An edit and a deletion in the cluster are put back at once with no other writes.", func(t *testing.T) {
		g := NewWithT(t)
		settle(f)
		f.writes.take()
		s, err := getStage(g, "alpha", "build-one")
		g.Expect(err).NotTo(HaveOccurred())
		s.Spec.Pod.Spec.Containers[0].Image = "evil:latest" // as kubectl edit would
		g.Expect(testEnv.Client.Update(ctx, s, client.FieldOwner("kubectl-edit"))).To(Succeed())
		g.Expect(testEnv.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-beta", Name: "settings-two"}})).To(Succeed())
		start := time.Now()
		g.Eventually(func(g Gomega) {
			s, err := getStage(g, "alpha", "build-one")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(image(s)).To(Equal("golang:1.28"))
			g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-beta", Name: "settings-two"}, &corev1.ConfigMap{})).To(Succeed())
		}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		t.Logf("drift corrected in %v", time.Since(start).Round(time.Millisecond))
		settle(f)
		g.Expect(f.writes.take()).To(ConsistOf(
			"PATCH /apis/cyclone.dev/v1alpha1/namespaces/cyclone-alpha/stages/build-one",
			"PATCH /api/v1/namespaces/cyclone-beta/configmaps/settings-two",
		))
	})

	t.Run("A commit that breaks one target stalls it, naming the file, and the others still move.", func(t *testing.T) {
		g := NewWithT(t)
		f.repo.WriteFile("tenants/alpha/one/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: [unclosed\n")
		f.repo.WriteFile("tenants/alpha/one/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../base\n- broken.yaml\nnameSuffix: -one\n")
		f.repo.WriteFile("tenants/alpha/base/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  added: \"again\"\n")
		f.repo.WriteFile("tenants/beta/base/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  added: \"again\"\n")
		bad := f.publish(g, "break alpha/one")
		expectApplied(g, "beta", bad)
		g.Eventually(func(g Gomega) {
			tn := getTenant(g, "alpha")
			one := targetStatus(tn, "one")
			g.Expect(one).NotTo(BeNil())
			stalled := apimeta.FindStatusCondition(one.Conditions, meta.StalledCondition)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Reason).To(Equal(ReasonRenderFailed))
			g.Expect(stalled.Message).To(ContainSubstring("tenants/alpha/one"))
			g.Expect(stalled.Message).To(ContainSubstring("broken.yaml"))
			g.Expect(one.LastAppliedRevision).To(Equal(rev))
			g.Expect(one.LastAttemptedRevision).To(Equal(bad))
			g.Expect(apimeta.IsStatusConditionTrue(tn.Status.Conditions, meta.StalledCondition)).To(BeTrue())
			two := targetStatus(tn, "two")
			g.Expect(two.LastAppliedRevision).To(Equal(bad))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		// Nothing of the broken target moved.
		cm := &corev1.ConfigMap{}
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-alpha", Name: "extra-one"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("added", "yes"))
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-alpha", Name: "extra-two"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("added", "again"))

		f.repo.Remove("tenants/alpha/one/broken.yaml")
		f.repo.WriteFile("tenants/alpha/one/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../base\nnameSuffix: -one\n")
		rev = f.publish(g, "fix alpha/one")
		expectApplied(g, "alpha", rev)
		expectApplied(g, "beta", rev)
	})

	t.Run("A commit past the Repository's render limits stalls each target with the reason and applies nothing of it.", func(t *testing.T) {
		g := NewWithT(t)
		setLimits := func(l *gyrev1alpha1.RepositoryLimits) {
			repo := &gyrev1alpha1.Repository{}
			g.Expect(testEnv.Client.Get(ctx, client.ObjectKeyFromObject(f.repoObj), repo)).To(Succeed())
			repo.Spec.Limits = l
			g.Expect(testEnv.Client.Update(ctx, repo)).To(Succeed())
		}
		setLimits(&gyrev1alpha1.RepositoryLimits{MaxObjects: ptr.To[int64](2)})
		f.repo.WriteFile("tenants/beta/base/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  added: \"capped\"\n")
		capped := f.publish(g, "three objects a target, past maxObjects")
		g.Eventually(func(g Gomega) {
			tn := getTenant(g, "beta")
			for _, target := range []string{"one", "two"} {
				st := targetStatus(tn, target)
				g.Expect(st).NotTo(BeNil())
				stalled := apimeta.FindStatusCondition(st.Conditions, meta.StalledCondition)
				g.Expect(stalled).NotTo(BeNil())
				g.Expect(stalled.Reason).To(Equal(ReasonRenderFailed))
				g.Expect(stalled.Message).To(ContainSubstring("more than spec.limits.maxObjects (2)"))
				g.Expect(st.LastAppliedRevision).To(Equal(rev))
				g.Expect(st.LastAttemptedRevision).To(Equal(capped))
				g.Expect(st.Inventory.Entries).To(ContainElement(gyrev1alpha1.InventoryEntry{ID: "cyclone-beta_extra-" + target + "__ConfigMap", Version: "v1"}), "the inventory stays")
			}
		}).WithTimeout(30 * time.Second).Should(Succeed())
		cm := &corev1.ConfigMap{}
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-beta", Name: "extra-one"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("added", "again"), "nothing of the capped render is applied")

		setLimits(nil)
		rev = f.publish(g, "limits back to the defaults")
		expectApplied(g, "alpha", rev)
		expectApplied(g, "beta", rev)
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: "cyclone-beta", Name: "extra-one"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("added", "capped"))
	})

	t.Run("Emptying an overlay trips the prune guard until the revision is allowed.", func(t *testing.T) {
		g := NewWithT(t)
		f.repo.WriteFile("tenants/beta/two/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n")
		empty := f.publish(g, "empty beta/two")
		g.Eventually(func(g Gomega) {
			two := targetStatus(getTenant(g, "beta"), "two")
			stalled := apimeta.FindStatusCondition(two.Conditions, meta.StalledCondition)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Reason).To(Equal(ReasonPruneGuard))
			g.Expect(stalled.Message).To(ContainSubstring(empty))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		_, err := getStage(g, "beta", "build-two")
		g.Expect(err).NotTo(HaveOccurred(), "nothing pruned")

		tn := getTenant(g, "beta")
		tn.Annotations = map[string]string{gyrev1alpha1.AllowMassPruneAnnotation: empty}
		g.Expect(testEnv.Client.Update(ctx, tn)).To(Succeed())
		g.Eventually(func(g Gomega) {
			two := targetStatus(getTenant(g, "beta"), "two")
			g.Expect(isReady(two.Conditions)).To(BeTrue())
			g.Expect(inventoryEntries(two.Inventory)).To(BeEmpty())
			_, err := getStage(g, "beta", "build-two")
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}).WithTimeout(30 * time.Second).Should(Succeed())
		rev = empty
	})

	t.Run("A controller restarted in the middle of a revision converges without writing anything twice.", func(t *testing.T) {
		g := NewWithT(t)
		settle(f)
		f.writes.take()
		f.repo.WriteFile("tenants/alpha/base/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  team: alpha\n  restarted: \"yes\"\n")
		before := f.writes.requests.Load()
		next := f.publish(g, "edit alpha settings")
		// Stopped once the reconciler has started on the revision.
		g.Eventually(f.writes.requests.Load).WithTimeout(10 * time.Second).WithPolling(5 * time.Millisecond).Should(BeNumerically(">", before))
		f.stop()
		f.start(g)
		expectApplied(g, "alpha", next)
		expectApplied(g, "beta", next)
		settle(f)
		seen := map[string]int{}
		for _, w := range f.writes.take() {
			if strings.HasPrefix(w, "PATCH /api") && !strings.HasSuffix(w, "/status") && !strings.Contains(w, "/tenants/") {
				seen[w]++
			}
		}
		for w, n := range seen {
			g.Expect(n).To(Equal(1), "%s written %d times", w, n)
		}
		// Only what the commit changed is written: alpha's settings on
		// each target; beta is not touched.
		g.Expect(seen).To(HaveKey("PATCH /api/v1/namespaces/cyclone-alpha/configmaps/settings-one"))
		g.Expect(seen).To(HaveKey("PATCH /api/v1/namespaces/cyclone-alpha/configmaps/settings-two"))
		g.Expect(seen).To(HaveLen(2))
		rev = next
	})

	t.Run("A full check of converged tenants writes nothing.", func(t *testing.T) {
		g := NewWithT(t)
		settle(f)
		f.writes.take()
		f.stop()
		f.start(g) // a fresh process checks every object
		for _, name := range []string{"alpha", "beta"} {
			expectApplied(g, name, rev)
		}
		settle(f)
		var writes []string
		for _, w := range f.writes.take() {
			if !strings.Contains(w, "/leases/") {
				writes = append(writes, w)
			}
		}
		g.Expect(writes).To(BeEmpty())
	})

	t.Run("A changed ignore of the Repository re-renders the same commit without what it leaves out.", func(t *testing.T) {
		g := NewWithT(t)
		f.ignore(g, "tenants/alpha/base/extra.yaml")
		g.Eventually(func(g Gomega) {
			tn := getTenant(g, "alpha")
			for _, target := range []string{"one", "two"} {
				st := targetStatus(tn, target)
				stalled := apimeta.FindStatusCondition(st.Conditions, meta.StalledCondition)
				g.Expect(stalled).NotTo(BeNil(), "target %s", target)
				g.Expect(stalled.Reason).To(Equal(ReasonRenderFailed))
				g.Expect(stalled.Message).To(ContainSubstring("extra.yaml"))
				g.Expect(st.LastAttemptedRevision).To(Equal(rev), "the same commit")
			}
		}).WithTimeout(30 * time.Second).Should(Succeed())
		g.Expect(isReady(targetStatus(getTenant(g, "beta"), "one").Conditions)).To(BeTrue(), "beta keeps its files")
		f.ignore(g, "")
		expectApplied(g, "alpha", rev)
	})

	t.Run("Deleting a tenant removes its objects and namespaces on both clusters.", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(testEnv.Client.Delete(ctx, &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "alpha"}})).To(Succeed())
		g.Eventually(func(g Gomega) {
			err := testEnv.Client.Get(ctx, client.ObjectKey{Name: "alpha"}, &gyrev1alpha1.Tenant{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}).WithTimeout(30 * time.Second).Should(Succeed())
		_, err := getStage(g, "alpha", "build-one")
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		// The shared control plane runs no namespace controller: its
		// namespaces are deleted but stay Terminating.
		for _, n := range []string{"cyclone-alpha", "cyclone-alpha-worker"} {
			ns := &corev1.Namespace{}
			err := testEnv.Client.Get(ctx, client.ObjectKey{Name: n}, ns)
			g.Expect(apierrors.IsNotFound(err) || ns.DeletionTimestamp != nil).To(BeTrue(), "%s deleted", n)
		}
		g.Eventually(func(g Gomega) {
			releasePVCs(g, f.farC, "cyclone-alpha-worker")
			err := f.farC.Get(ctx, client.ObjectKey{Name: "cyclone-alpha-worker"}, &corev1.Namespace{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}).WithTimeout(60 * time.Second).Should(Succeed())
		// beta is untouched.
		g.Expect(f.farC.Get(ctx, client.ObjectKey{Name: "cyclone-beta-worker"}, &corev1.Namespace{})).To(Succeed())
		expectApplied(g, "beta", rev)
	})

	t.Run("Removing a cluster from a tenant removes its objects and its worker namespace there.", func(t *testing.T) {
		g := NewWithT(t)
		tn := getTenant(g, "beta")
		g.Expect(tn.Status.ExecutionClusters).To(Equal([]string{"far"}))
		tn.Spec.Clusters = tn.Spec.Clusters[:1]
		g.Expect(testEnv.Client.Update(ctx, tn)).To(Succeed())
		g.Eventually(func(g Gomega) {
			releasePVCs(g, f.farC, "cyclone-beta-worker")
			err := f.farC.Get(ctx, client.ObjectKey{Name: "cyclone-beta-worker"}, &corev1.Namespace{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
			_, err = getStage(g, "beta", "build-two")
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
			tn := getTenant(g, "beta")
			g.Expect(tn.Status.ExecutionClusters).To(BeEmpty())
			g.Expect(tn.Status.Targets).To(HaveLen(1))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		expectApplied(g, "beta", rev)
		// The control cluster's worker namespace stays: target one uses it.
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Name: "cyclone-beta-worker"}, &corev1.Namespace{})).To(Succeed())
	})
}

// settle waits until the reconciler has sent no request for a second:
// the reconciles that the last writes' watch events start are over. A
// slow reconcile makes it wait longer, never return early.
func settle(f *tenantFixture) {
	const quiet = time.Second
	last, since := f.writes.requests.Load(), time.Now()
	NewWithT(f.t).Eventually(func() bool {
		if n := f.writes.requests.Load(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= quiet
	}).WithTimeout(time.Minute).WithPolling(50*time.Millisecond).Should(BeTrue(), "the reconciler kept sending requests")
}

// buildStage is stages.yaml with only the build Stage, on image.
func buildStage(image string) string {
	return `apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: build
spec:
  pod:
    spec:
      containers:
      - name: main
        image: ` + image + `
        command: [go, build, ./...]
`
}

// requestKind names a request by its method, resource and, for writes,
// whether it is a dry run: "PATCH configmaps dry-run".
func requestKind(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	// /api/v1/namespaces/ns/configmaps/name or /apis/g/v/...
	var resource []string
	for i := 0; i < len(parts); i++ {
		switch {
		case i == 0 && parts[0] == "api":
			i++ // version
		case i == 0 && parts[0] == "apis":
			i += 2 // group, version
		case parts[i] == "namespaces" && i+2 < len(parts):
			i++ // the namespace's name
		default:
			resource = append(resource, parts[i])
		}
	}
	kind := req.Method
	if len(resource) > 0 {
		kind += " " + resource[0]
		if len(resource) > 2 {
			kind += "/" + resource[2]
		} else if len(resource) == 1 {
			kind += " (collection)"
		}
	}
	if req.URL.Query().Get("dryRun") != "" {
		kind += " dry-run"
	}
	if req.URL.Query().Get("watch") != "" {
		kind += " watch"
	}
	return kind
}
