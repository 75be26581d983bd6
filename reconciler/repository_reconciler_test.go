package reconciler

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/source"
)

// repositoryFixture is a Git remote and a running Repository reconciler.
type repositoryFixture struct {
	repo *gitserver.Repo
	srv  *gitserver.HTTPServer
	git  *source.Git
	rec  *RepositoryReconciler
}

func newRepositoryFixture(t *testing.T, opts gitserver.HTTPOptions) *repositoryFixture {
	t.Helper()
	root := t.TempDir()
	f := &repositoryFixture{repo: gitserver.NewRepo(t, root, "app.git"), git: &source.Git{CacheDir: t.TempDir()}}
	srv, err := gitserver.StartHTTP(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	f.srv = srv
	mgr := newManager(t)
	f.rec = &RepositoryReconciler{Git: f.git}
	if err := f.rec.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	startManager(t, mgr)
	return f
}

func (f *repositoryFixture) url() string { return f.srv.URL + "/app.git" }

// create makes a Repository that polls hourly, so only spec changes and
// requests move it during a test.
func (f *repositoryFixture) create(t *testing.T, g *WithT, spec gyrev1alpha1.RepositorySpec) *gyrev1alpha1.Repository {
	t.Helper()
	if spec.URL == "" {
		spec.URL = f.url()
	}
	if spec.Interval == nil {
		spec.Interval = &metav1.Duration{Duration: time.Hour}
	}
	obj := &gyrev1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{GenerateName: "repo-"}, Spec: spec}
	g.Expect(testEnv.Client.Create(context.Background(), obj)).To(Succeed())
	deleteAtCleanup(t, obj)
	return obj
}

// request asks for an immediate poll and returns the token.
func request(g *WithT, obj *gyrev1alpha1.Repository) string {
	token := time.Now().Format(time.RFC3339Nano)
	p := client.MergeFrom(obj.DeepCopy())
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[gyrev1alpha1.ReconcileRequestAnnotation] = token
	g.Expect(testEnv.Client.Patch(context.Background(), obj, p)).To(Succeed())
	return token
}

func get(g Gomega, obj *gyrev1alpha1.Repository) *gyrev1alpha1.Repository {
	got := &gyrev1alpha1.Repository{}
	g.Expect(testEnv.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), got)).To(Succeed())
	return got
}

// eventReasons lists the reasons of the events recorded about obj.
func eventReasons(g Gomega, obj *gyrev1alpha1.Repository) []string {
	list := &eventsv1.EventList{}
	g.Expect(testEnv.Client.List(context.Background(), list)).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Repository" && e.Regarding.Name == obj.Name {
			// A repeated event is one object with a count; count it once.
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

func readyOf(r *gyrev1alpha1.Repository) *metav1.Condition {
	return apimeta.FindStatusCondition(r.Status.Conditions, meta.ReadyCondition)
}

func TestRepositoryReconciler_followsTheRemote(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newRepositoryFixture(t, gitserver.HTTPOptions{})
	f.repo.WriteFile("base/kustomization.yaml", "resources: []\n")
	one := f.repo.Commit("one")
	f.repo.Push()
	obj := f.create(t, g, gyrev1alpha1.RepositorySpec{Ref: &gyrev1alpha1.GitRef{Branch: "main"}})

	// The first artifact is stored and Ready.
	eventually(g, func(g Gomega) {
		got := get(g, obj)
		g.Expect(readyOf(got)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(got.Status.Artifact).NotTo(BeNil())
		g.Expect(got.Status.Artifact.Revision).To(Equal("main@sha1:" + one))
		g.Expect(got.Status.Artifact.Digest).To(HavePrefix("sha256:"))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, meta.ReconcilingCondition)).To(BeNil())
	})
	dir, err := f.rec.ArtifactDir(get(g, obj))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(filepath.Join(dir, "base/kustomization.yaml")).To(BeAnExistingFile())
	eventually(g, func(g Gomega) {
		g.Expect(eventReasons(g, obj)).To(ConsistOf(ReasonNewArtifact))
	})

	// A requested poll of an unchanged remote lists once and fetches
	// nothing.
	before := f.git.Stats()
	token := request(g, get(g, obj))
	eventually(g, func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(token))
	})
	g.Expect(f.git.Stats().Fetches).To(Equal(before.Fetches))
	g.Expect(f.git.Stats().Listings).To(Equal(before.Listings + 1))

	// A new commit is picked up on request, long before the interval.
	f.repo.WriteFile("base/kustomization.yaml", "resources: [a.yaml]\n")
	two := f.repo.Commit("two")
	f.repo.Push()
	request(g, get(g, obj))
	eventually(g, func(g Gomega) {
		g.Expect(get(g, obj).Status.Artifact).To(HaveField("Revision", "main@sha1:"+two))
	})

	// While the remote fails, the last artifact stays in status and on
	// disk, and Ready says why.
	hidden := f.repo.Bare + ".away"
	g.Expect(os.Rename(f.repo.Bare, hidden)).To(Succeed())
	request(g, get(g, obj))
	eventually(g, func(g Gomega) {
		got := get(g, obj)
		g.Expect(readyOf(got)).To(And(
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", string(source.FetchFailed)),
			HaveField("Message", ContainSubstring("serving the last artifact, main@sha1:"+two))))
		g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, meta.ReconcilingCondition)).
			To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(got.Status.Artifact).To(HaveField("Revision", "main@sha1:"+two))
	})
	dir, err = f.rec.ArtifactDir(get(g, obj))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dir).To(BeADirectory())

	// It recovers when the remote is back (the retry backoff brings it).
	g.Expect(os.Rename(hidden, f.repo.Bare)).To(Succeed())
	eventually(g, func(g Gomega) {
		g.Expect(readyOf(get(g, obj))).To(HaveField("Status", metav1.ConditionTrue))
	})
	// One event per change of outcome: two revisions, the failure
	// starting (however often it was retried) and the recovery.
	eventually(g, func(g Gomega) {
		g.Expect(eventReasons(g, obj)).To(ConsistOf(
			ReasonNewArtifact, ReasonNewArtifact, string(source.FetchFailed), ReasonArtifactStored))
	})

	// Deleting the Repository removes its artifacts.
	g.Expect(testEnv.Client.Delete(context.Background(), obj)).To(Succeed())
	eventually(g, func(g Gomega) {
		g.Expect(filepath.Join(f.git.CacheDir, obj.Name)).NotTo(BeADirectory())
	})
}

func TestRepositoryReconciler_refKinds(t *testing.T) {
	testcluster.Require(t)
	f := newRepositoryFixture(t, gitserver.HTTPOptions{})
	f.repo.WriteFile("a", "1\n")
	first := f.repo.Commit("one")
	f.repo.AnnotatedTag("v1.0.0", "one")
	f.repo.WriteFile("a", "2\n")
	second := f.repo.Commit("two")
	f.repo.Tag("v1.1.0")
	f.repo.Push()
	tests := []struct {
		name         string
		ref          *gyrev1alpha1.GitRef
		wantRevision string
	}{
		{"No ref follows main.", nil, "main@sha1:" + second},
		{"An annotated tag names the tag and its commit.", &gyrev1alpha1.GitRef{Tag: "v1.0.0"}, "v1.0.0@sha1:" + first},
		{"A semver range names the winning tag.", &gyrev1alpha1.GitRef{SemVer: "^1.0"}, "v1.1.0@sha1:" + second},
		{"An exact commit is a bare sha1 revision.", &gyrev1alpha1.GitRef{Commit: first}, "sha1:" + first},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := f.create(t, g, gyrev1alpha1.RepositorySpec{Ref: tt.ref})
			eventually(g, func(g Gomega) {
				got := get(g, obj)
				g.Expect(readyOf(got)).To(HaveField("Status", metav1.ConditionTrue))
				g.Expect(got.Status.Artifact).To(HaveField("Revision", tt.wantRevision))
			})
		})
	}
}

func TestRepositoryReconciler_failures(t *testing.T) {
	testcluster.Require(t)
	f := newRepositoryFixture(t, gitserver.HTTPOptions{Username: "alice", Password: "correct-horse"})
	f.repo.WriteFile("a", "1\n")
	f.repo.Commit("one")
	f.repo.Push()
	ns := newNamespace(t)
	secret := func(data map[string]string) *gyrev1alpha1.SecretReference {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "git-", Namespace: ns}, StringData: data}
		if err := testEnv.Client.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		return &gyrev1alpha1.SecretReference{Name: s.Name, Namespace: ns}
	}
	tests := []struct {
		name        string
		spec        gyrev1alpha1.RepositorySpec
		wantReady   bool
		wantReason  string
		wantStalled bool
	}{
		{"Credentials from a Secret are used.", gyrev1alpha1.RepositorySpec{
			SecretRef: secret(map[string]string{"username": "alice", "password": "correct-horse"})}, true, ReasonArtifactStored, false},
		{"A wrong password is AuthenticationFailed and never shown.", gyrev1alpha1.RepositorySpec{
			SecretRef: secret(map[string]string{"username": "alice", "password": "wrong-horse"})}, false, string(source.AuthenticationFailed), false},
		{"A missing Secret is SecretNotFound.", gyrev1alpha1.RepositorySpec{
			SecretRef: &gyrev1alpha1.SecretReference{Name: "nope", Namespace: ns}}, false, ReasonSecretNotFound, false},
		{"A missing branch is RefNotFound.", gyrev1alpha1.RepositorySpec{
			Ref:       &gyrev1alpha1.GitRef{Branch: "nope"},
			SecretRef: secret(map[string]string{"username": "alice", "password": "correct-horse"})}, false, string(source.RefNotFound), false},
		{"An unparseable URL stalls the Repository.", gyrev1alpha1.RepositorySpec{
			URL: "https://[::1/app.git"}, false, string(source.InvalidURL), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := f.create(t, g, tt.spec)
			eventually(g, func(g Gomega) {
				got := get(g, obj)
				ready := readyOf(got)
				g.Expect(ready).NotTo(BeNil())
				g.Expect(ready.Status == metav1.ConditionTrue).To(Equal(tt.wantReady))
				g.Expect(ready.Reason).To(Equal(tt.wantReason))
				g.Expect(ready.Message).NotTo(ContainSubstring("horse"))
				stalled := apimeta.FindStatusCondition(got.Status.Conditions, meta.StalledCondition)
				g.Expect(stalled != nil).To(Equal(tt.wantStalled))
			})
		})
	}
}

func TestRepositoryReconciler_suspend(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newRepositoryFixture(t, gitserver.HTTPOptions{})
	f.repo.WriteFile("a", "1\n")
	one := f.repo.Commit("one")
	f.repo.Push()
	obj := f.create(t, g, gyrev1alpha1.RepositorySpec{})
	eventually(g, func(g Gomega) {
		g.Expect(get(g, obj).Status.Artifact).To(HaveField("Revision", "main@sha1:"+one))
	})

	got := get(g, obj)
	p := client.MergeFrom(got.DeepCopy())
	got.Spec.Suspend = true
	g.Expect(testEnv.Client.Patch(context.Background(), got, p)).To(Succeed())
	f.repo.WriteFile("a", "2\n")
	f.repo.Commit("two")
	f.repo.Push()
	before := f.git.Stats()
	request(g, get(g, obj))
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, obj).Status.Artifact).To(HaveField("Revision", "main@sha1:"+one))
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Expect(f.git.Stats()).To(Equal(before), "a suspended Repository does not touch the remote")
}

func TestRepositoryReconciler_ignoreChangeMakesANewArtifactOfTheSameCommit(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newRepositoryFixture(t, gitserver.HTTPOptions{})
	f.repo.WriteFile("base/kustomization.yaml", "resources: []\n")
	f.repo.WriteFile("docs/guide.md", "guide\n")
	f.repo.Commit("one")
	f.repo.Push()
	obj := f.create(t, g, gyrev1alpha1.RepositorySpec{})
	var first gyrev1alpha1.Artifact
	eventually(g, func(g Gomega) {
		got := get(g, obj)
		g.Expect(got.Status.Artifact).NotTo(BeNil())
		first = *got.Status.Artifact
	})

	got := get(g, obj)
	p := client.MergeFrom(got.DeepCopy())
	got.Spec.Ignore = ptr.To("/docs/\n")
	g.Expect(testEnv.Client.Patch(context.Background(), got, p)).To(Succeed())
	eventually(g, func(g Gomega) {
		got := get(g, obj)
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Artifact.Revision).To(Equal(first.Revision))
		g.Expect(got.Status.Artifact.Digest).NotTo(Equal(first.Digest))
	})
	dir, err := f.rec.ArtifactDir(get(g, obj))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(filepath.Join(dir, "docs")).NotTo(BeAnExistingFile())
	g.Expect(filepath.Join(dir, "base/kustomization.yaml")).To(BeAnExistingFile())
}
