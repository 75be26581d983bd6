package receiver_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/receiver"
)

// noteRecorder keeps the notes of the events it is given.
type noteRecorder struct {
	mu    sync.Mutex
	notes []string
}

func (r *noteRecorder) Eventf(_ runtime.Object, _ runtime.Object, _, _, _, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, strings.TrimSpace(strings.ReplaceAll(note, "%s", "")))
	for _, a := range args {
		if s, ok := a.(string); ok {
			r.notes = append(r.notes, s)
		}
	}
}

// secretFixture is a Receiver on its own HTTP server, reading
// Repositories and Secrets straight from the API server, with no
// controller: what it does is visible in the annotations it sets.
type secretFixture struct {
	url    string
	logs   *strings.Builder
	events *noteRecorder
	ns     string
	// cloneURL is the URL of the Repositories and the events.
	cloneURL string
}

func newSecretFixture(t *testing.T, g *WithT) *secretFixture {
	if testing.Short() {
		t.Skip("needs the test control plane")
	}
	f := &secretFixture{logs: &strings.Builder{}, events: &noteRecorder{}, ns: newNamespace(t, g),
		cloneURL: "https://git.example.com/" + uniqueName("team-") + "/pipelines.git"}
	var mu sync.Mutex
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		f.logs.WriteString(prefix + args + "\n")
	}, funcr.Options{Verbosity: 10})
	h := receiver.New(testEnv.Client, receiver.Options{Logger: log, Recorder: f.events})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.url = srv.URL + receiver.Path
	return f
}

// repository creates a Repository of f.cloneURL whose webhook Secret has
// data.
func (f *secretFixture) repository(t *testing.T, g *WithT, data map[string][]byte) (*gyrev1alpha1.Repository, *corev1.Secret) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-", Namespace: f.ns}, Data: data}
	g.Expect(testEnv.Client.Create(context.Background(), s)).To(Succeed())
	repo := &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "pipelines-"},
		Spec: gyrev1alpha1.RepositorySpec{URL: f.cloneURL,
			Webhook: &gyrev1alpha1.RepositoryWebhook{SecretRef: gyrev1alpha1.SecretReference{Name: s.Name, Namespace: f.ns}}},
	}
	g.Expect(testEnv.Client.Create(context.Background(), repo)).To(Succeed())
	t.Cleanup(func() { _ = client.IgnoreNotFound(testEnv.Client.Delete(context.Background(), repo)) })
	return repo, s
}

// post sends d signed with secret and returns the status and body.
func (f *secretFixture) post(g *WithT, d delivery, secret string) (int, string) {
	resp, err := http.DefaultClient.Do(d.request(f.url, secret))
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}

func TestReceiver_neverShowsASecret(t *testing.T) {
	g := NewWithT(t)
	f := newSecretFixture(t, g)
	good := "correct-horse-battery-staple"
	f.repository(t, g, map[string][]byte{receiver.SecretKey: []byte(good)})
	f.repository(t, g, map[string][]byte{"token": []byte("not-the-key-" + good)})
	u := urls{clone: f.cloneURL, web: strings.TrimSuffix(f.cloneURL, ".git")}

	var bodies []string
	for _, tc := range []struct {
		provider, secret string
		want             int
	}{
		{receiver.ProviderGitHub, good, http.StatusAccepted},
		{receiver.ProviderGitHub, "wrong-" + good, http.StatusUnauthorized},
		// GitLab sends the secret itself in a header: it must not be
		// echoed or logged either.
		{receiver.ProviderGitLab, good, http.StatusAccepted},
		{receiver.ProviderGitLab, "wrong-" + good, http.StatusUnauthorized},
		{receiver.ProviderBitbucket, good, http.StatusAccepted},
		{receiver.ProviderGitea, good, http.StatusAccepted},
	} {
		code, body := f.post(g, pushDelivery(tc.provider, u, strings.Repeat("a", 40)), tc.secret)
		g.Expect(code).To(Equal(tc.want), body)
		bodies = append(bodies, body)
	}
	g.Expect(f.logs.String()).To(ContainSubstring("Requested fetch"), "the logger is wired")
	g.Expect(f.logs.String()).To(ContainSubstring("has no key"), "the Secret without the key is logged, by name")
	g.Expect(f.events.notes).NotTo(BeEmpty(), "the recorder is wired")
	for _, shown := range append([]string{f.logs.String()}, append(bodies, f.events.notes...)...) {
		g.Expect(shown).NotTo(ContainSubstring(good))
	}
}

func TestReceiver_rotatedSecretTakesEffectAtOnce(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	f := newSecretFixture(t, g)
	_, secret := f.repository(t, g, map[string][]byte{receiver.SecretKey: []byte("before")})
	d := pushDelivery(receiver.ProviderGitHub, urls{clone: f.cloneURL}, strings.Repeat("b", 40))
	for _, tc := range []struct {
		name   string
		rotate string
		secret string
		want   int
	}{
		{"A push signed with the Secret's value is accepted.", "", "before", http.StatusAccepted},
		{"Once the Secret is rotated, the next push signed with the old value is refused: no copy of the Secret is kept.", "after", "before", http.StatusUnauthorized},
		{"The next push signed with the new value is accepted.", "", "after", http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			if tc.rotate != "" {
				secret.Data[receiver.SecretKey] = []byte(tc.rotate)
				g.Expect(testEnv.Client.Update(context.Background(), secret)).To(Succeed())
			}
			code, body := f.post(g, d, tc.secret)
			g.Expect(code).To(Equal(tc.want), body)
		})
	}
}
