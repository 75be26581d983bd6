package manager

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/config"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// secretSpy is the manager's cache, noting every Secret asked of it: a
// Secret read through the cache starts an informer on every Secret of
// the cluster.
type secretSpy struct {
	cache.Cache
	scheme *runtime.Scheme

	mu    sync.Mutex
	asked []string
}

func (s *secretSpy) note(how string, obj runtime.Object) {
	gvk, err := apiutil.GVKForObject(obj, s.scheme)
	if err != nil || gvk.Group != "" || (gvk.Kind != "Secret" && gvk.Kind != "SecretList") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, how)
}

func (s *secretSpy) secretsAsked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

func (s *secretSpy) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s.note("get "+key.String(), obj)
	return s.Cache.Get(ctx, key, obj, opts...)
}

func (s *secretSpy) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	s.note("list", list)
	return s.Cache.List(ctx, list, opts...)
}

func (s *secretSpy) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	s.note("informer", obj)
	return s.Cache.GetInformer(ctx, obj, opts...)
}

func (s *secretSpy) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind, opts ...cache.InformerGetOption) (cache.Informer, error) {
	if gvk.Group == "" && gvk.Kind == "Secret" {
		s.mu.Lock()
		s.asked = append(s.asked, "informer for kind")
		s.mu.Unlock()
	}
	return s.Cache.GetInformerForKind(ctx, gvk, opts...)
}

func TestManager_readsSecretsFromTheAPIServerNeverTheCache(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "private.git")
	repo.WriteFile("a", "1\n")
	repo.Commit("one")
	repo.Push()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{Username: "alice", Password: "correct-horse"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)

	// Every controller gyre runs, built as `gyre controller` builds them,
	// on a cache that notes Secret reads.
	spy := &secretSpy{scheme: testEnv.Scheme}
	opts := mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0"}.Manager(testEnv.Scheme)
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	opts.NewCache = func(cfg *rest.Config, o cache.Options) (cache.Cache, error) {
		c, err := cache.New(cfg, o)
		spy.Cache = c
		return spy, err
	}
	mgr, err := ctrl.NewManager(testEnv.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(Setup(mgr, Options{ArtifactDir: t.TempDir(), ProbeAddr: "0"})).To(Succeed())
	startManager(t, mgr)

	ns := newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: ns},
		StringData: map[string]string{"username": "alice", "password": "correct-horse"}}
	g.Expect(testEnv.Client.Create(ctx, secret)).To(Succeed())
	obj := &gyrev1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{GenerateName: "private-"}, Spec: gyrev1alpha1.RepositorySpec{
		URL:       srv.URL + "/private.git",
		Interval:  &metav1.Duration{Duration: time.Hour},
		SecretRef: &gyrev1alpha1.SecretReference{Name: secret.Name, Namespace: ns},
	}}
	g.Expect(testEnv.Client.Create(ctx, obj)).To(Succeed())
	deleteAtCleanup(t, obj)

	eventually(g, func(g Gomega) {
		got := get(g, obj)
		g.Expect(readyOf(got)).To(HaveField("Status", metav1.ConditionTrue), "the credentials were read and used")
	})
	g.Expect(spy.secretsAsked()).To(BeEmpty(), "Secrets read through the manager's cache")
}
