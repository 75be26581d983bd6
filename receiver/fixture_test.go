package receiver_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/receiver"
)

// pushFixture is a Git server with one repository, pushed to over HTTP,
// and gyre's controllers and webhook server running as `gyre controller`
// runs them.
type pushFixture struct {
	t    testing.TB
	repo *gitserver.Repo
	git  *gitserver.HTTPServer
	// cloneURL is the repository's URL on the Git server.
	cloneURL string
	// hookURL is the receiver's URL on gyre's webhook server.
	hookURL string
	// ns holds the test's Secrets.
	ns string
}

func newPushFixture(t testing.TB, g *WithT) *pushFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the test control plane")
	}
	root := t.TempDir()
	f := &pushFixture{t: t, repo: gitserver.NewRepo(t, root, "pipelines.git")}
	var err error
	f.git, err = gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(f.git.Close)
	f.cloneURL = f.git.URL + "/pipelines.git"
	// Pushes go through the Git server, as a user's would.
	f.repo.Git("remote", "set-url", "origin", f.cloneURL)
	f.ns = newNamespace(t, g)

	opts := manager.Options{MetricsAddr: "0", ProbeAddr: "0", ArtifactDir: t.TempDir()}
	mopts := opts.Manager(testEnv.Scheme)
	mopts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(testEnv.Config, mopts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(manager.Setup(mgr, opts)).To(Succeed())
	// The webhook server Setup adds for --webhook-addr, on a port of the
	// test's choosing.
	hooks := manager.NewWebhookServer(mgr, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	f.hookURL = "http://" + ln.Addr().String() + receiver.Path

	ctx, cancel := context.WithCancel(context.Background())
	mgrDone, hooksDone := make(chan error, 1), make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()
	go func() { hooksDone <- hooks.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		g.Expect(<-hooksDone).To(Succeed())
		g.Expect(<-mgrDone).To(Succeed())
	})
	return f
}

// newNamespace creates a namespace for one test and deletes it after.
func newNamespace(t testing.TB, g *WithT) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "receiver-test-"}}
	g.Expect(testEnv.Client.Create(context.Background(), ns)).To(Succeed())
	t.Cleanup(func() { _ = testEnv.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// newSecret creates a webhook Secret holding value and returns its name.
func (f *pushFixture) newSecret(g *WithT, value string) string {
	return f.newSecretData(g, map[string][]byte{receiver.SecretKey: []byte(value)})
}

// newSecretData creates a Secret of data and returns its name.
func (f *pushFixture) newSecretData(g *WithT, data map[string][]byte) string {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-", Namespace: f.ns}, Data: data}
	g.Expect(testEnv.Client.Create(context.Background(), s)).To(Succeed())
	return s.Name
}

// newRepository creates a Repository of url, polled once an hour, whose
// push events are signed with the Secret named secret; none when "".
// edits change the spec before it is created.
func (f *pushFixture) newRepository(g *WithT, url, secret string, edits ...func(*gyrev1alpha1.RepositorySpec)) *gyrev1alpha1.Repository {
	obj := &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "pipelines-"},
		Spec:       gyrev1alpha1.RepositorySpec{URL: url, Interval: &metav1.Duration{Duration: time.Hour}},
	}
	if secret != "" {
		obj.Spec.Webhook = &gyrev1alpha1.RepositoryWebhook{SecretRef: gyrev1alpha1.SecretReference{Name: secret, Namespace: f.ns}}
	}
	for _, edit := range edits {
		edit(&obj.Spec)
	}
	g.Expect(testEnv.Client.Create(context.Background(), obj)).To(Succeed())
	f.t.Cleanup(func() { _ = client.IgnoreNotFound(testEnv.Client.Delete(context.Background(), obj)) })
	return obj
}

// publish writes the tenant's one ConfigMap with value, commits and
// pushes it through the Git server, and returns the commit.
func (f *pushFixture) publish(tenant, value string) string {
	f.repo.WriteFile("tenants/"+tenant+"/kustomization.yaml", "resources:\n- settings.yaml\n")
	f.repo.WriteFile("tenants/"+tenant+"/settings.yaml",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: \""+value+"\"\n")
	sha := f.repo.Commit("settings " + value)
	f.repo.Git("push", "-q", "origin", "main")
	return sha
}

// newTenant creates a Tenant of repo on the control cluster and waits
// until it is gone again when the test ends.
func (f *pushFixture) newTenant(g *WithT, name string, repo *gyrev1alpha1.Repository) {
	tn := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: repo.Name},
			Interval:      &metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(testEnv.Client.Create(context.Background(), tn)).To(Succeed())
	// Registered after the manager's cleanup, so it runs first: the
	// Tenant's finalizer needs the controller.
	f.t.Cleanup(func() {
		_ = testEnv.Client.Delete(context.Background(), tn)
		g.Eventually(func() bool {
			err := testEnv.Client.Get(context.Background(), client.ObjectKeyFromObject(tn), &gyrev1alpha1.Tenant{})
			return err != nil
		}).WithTimeout(30 * time.Second).Should(BeTrue())
	})
}

// uniqueName returns prefix and a random suffix.
func uniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// revision is the artifact revision of a commit of main.
func revision(sha string) string { return "main@sha1:" + sha }

// artifactRevision reads repo's artifact revision, "" before the first.
func artifactRevision(g Gomega, repo *gyrev1alpha1.Repository) string {
	got := &gyrev1alpha1.Repository{}
	g.Expect(testEnv.Client.Get(context.Background(), client.ObjectKeyFromObject(repo), got)).To(Succeed())
	if got.Status.Artifact == nil {
		return ""
	}
	return got.Status.Artifact.Revision
}

// requestedAt reads repo's gyre.dev/requestedAt annotation.
func requestedAt(g Gomega, repo *gyrev1alpha1.Repository) string {
	got := &gyrev1alpha1.Repository{}
	g.Expect(testEnv.Client.Get(context.Background(), client.ObjectKeyFromObject(repo), got)).To(Succeed())
	return got.Annotations[gyrev1alpha1.ReconcileRequestAnnotation]
}

// tenantAt reports whether the Tenant is Ready with rev applied.
func tenantAt(name, rev string) (bool, error) {
	tn := &gyrev1alpha1.Tenant{}
	if err := testEnv.Client.Get(context.Background(), client.ObjectKey{Name: name}, tn); err != nil {
		return false, err
	}
	return apimeta.IsStatusConditionTrue(tn.Status.Conditions, meta.ReadyCondition) &&
		tn.Status.LastAppliedRevision == rev && tn.Status.ObservedGeneration == tn.Generation, nil
}

// expectTenantAt waits until the Tenant is Ready with rev applied.
func expectTenantAt(g *WithT, name, rev string) {
	g.Eventually(func(g Gomega) {
		ok, err := tenantAt(name, rev)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue(), "Tenant %s Ready at %s", name, rev)
	}).WithTimeout(60 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// urls are the URLs a Git server's event gives a repository by.
type urls struct {
	// clone is the HTTP(S) clone URL, with .git.
	clone string
	// web is the repository's page, without .git.
	web string
	// ssh is the scp-like SSH clone URL.
	ssh string
}

// localURLs are the URLs of the fixture's repository, as the Git
// server's events would give them: its SSH URL is made up.
func (f *pushFixture) localURLs() urls {
	return urls{clone: f.cloneURL, web: f.git.URL + "/pipelines", ssh: "git@git.example.com:team/pipelines.git"}
}

// delivery is one event a Git server sends.
type delivery struct {
	provider string
	// event is the event type header's value; the provider's push event
	// when empty.
	event string
	body  []byte
}

// pushDelivery is provider's push event of sha to main for u. Bitbucket
// Server is "bitbucket-server": a Bitbucket like Cloud on the wire, with
// its own event.
func pushDelivery(provider string, u urls, sha string) delivery {
	var body any
	switch provider {
	case receiver.ProviderGitHub, receiver.ProviderGitea:
		body = map[string]any{
			"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": sha,
			"repository": map[string]any{"full_name": "team/pipelines", "clone_url": u.clone, "html_url": u.web, "ssh_url": u.ssh},
		}
	case receiver.ProviderGitLab:
		body = map[string]any{
			"object_kind": "push", "ref": "refs/heads/main", "after": sha, "checkout_sha": sha,
			"project":    map[string]any{"path_with_namespace": "team/pipelines", "git_http_url": u.clone, "git_ssh_url": u.ssh, "web_url": u.web},
			"repository": map[string]any{"url": u.ssh, "git_http_url": u.clone, "git_ssh_url": u.ssh, "homepage": u.web},
		}
	case receiver.ProviderBitbucket:
		body = map[string]any{
			"repository": map[string]any{"type": "repository", "full_name": "team/pipelines",
				"links": map[string]any{"html": map[string]any{"href": u.web}}},
			"push": map[string]any{"changes": []any{map[string]any{
				"new": map[string]any{"type": "branch", "name": "main", "target": map[string]any{"type": "commit", "hash": sha}},
			}}},
		}
	case "bitbucket-server":
		body = map[string]any{
			"eventKey": "repo:refs_changed",
			"repository": map[string]any{"slug": "pipelines", "links": map[string]any{
				"clone": []any{map[string]any{"href": u.clone, "name": "http"}, map[string]any{"href": "ssh://" + strings.Replace(u.ssh, ":", "/", 1), "name": "ssh"}},
				"self":  []any{map[string]any{"href": u.web + "/browse"}},
			}},
			"changes": []any{map[string]any{"ref": map[string]any{"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
				"fromHash": strings.Repeat("0", 40), "toHash": sha, "type": "UPDATE"}},
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return delivery{provider: provider, body: b}
}

// request is the delivery as the provider sends it, signed with secret
// the provider's way; unsigned when secret is "".
func (d delivery) request(url, secret string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	id := uniqueName("delivery-")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(d.body)
	sig := hex.EncodeToString(mac.Sum(nil))
	event := func(def string) string {
		if d.event != "" {
			return d.event
		}
		return def
	}
	switch d.provider {
	case receiver.ProviderGitHub:
		req.Header.Set("X-GitHub-Event", event("push"))
		req.Header.Set("X-GitHub-Delivery", id)
		if secret != "" {
			req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
		}
	case receiver.ProviderGitea:
		// Gitea sends GitHub's and Gogs' headers too.
		req.Header.Set("X-Gitea-Event", event("push"))
		req.Header.Set("X-GitHub-Event", event("push"))
		req.Header.Set("X-Gogs-Event", event("push"))
		req.Header.Set("X-Gitea-Delivery", id)
		if secret != "" {
			req.Header.Set("X-Gitea-Signature", sig)
		}
	case receiver.ProviderGitLab:
		req.Header.Set("X-Gitlab-Event", event("Push Hook"))
		req.Header.Set("X-Gitlab-Event-UUID", id)
		if secret != "" {
			req.Header.Set("X-Gitlab-Token", secret)
		}
	case receiver.ProviderBitbucket:
		req.Header.Set("X-Event-Key", event("repo:push"))
		req.Header.Set("X-Request-UUID", id)
		if secret != "" {
			req.Header.Set("X-Hub-Signature", "sha256="+sig)
		}
	case "bitbucket-server":
		req.Header.Set("X-Event-Key", event("repo:refs_changed"))
		req.Header.Set("X-Request-Id", id)
		if secret != "" {
			req.Header.Set("X-Hub-Signature", "sha256="+sig)
		}
	}
	return req
}

// hookResponse is the receiver's answer.
type hookResponse struct {
	Message      string   `json:"message"`
	Repositories []string `json:"repositories"`
}

// send posts req and returns the status and the answer.
func send(g Gomega, req *http.Request) (int, hookResponse) {
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	var out hookResponse
	g.Expect(json.Unmarshal(body, &out)).To(Succeed(), string(body))
	return resp.StatusCode, out
}

// sendOK posts req until the webhook server answers: it starts with the
// manager.
func sendOK(g *WithT, req func() *http.Request) (int, hookResponse) {
	var code int
	var out hookResponse
	g.Eventually(func(g Gomega) {
		code, out = send(g, req())
	}).WithTimeout(10 * time.Second).Should(Succeed())
	return code, out
}
