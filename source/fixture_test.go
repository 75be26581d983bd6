package source

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/gyreops/gyre/internal/gitserver"
)

// fixture is a repository served over HTTP by git http-backend, a
// working clone to change it, and a Git with its own cache.
type fixture struct {
	repo  *gitserver.Repo
	srv   *gitserver.HTTPServer
	url   string
	git   *Git
	cache string
}

func newFixture(t testing.TB, opts gitserver.HTTPOptions) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{repo: gitserver.NewRepo(t, root, "app.git"), cache: t.TempDir()}
	srv, err := gitserver.StartHTTP(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	f.srv = srv
	f.url = srv.URL + "/app.git"
	f.git = &Git{CacheDir: f.cache}
	return f
}

// req is a request for the fixture's repository.
func (f *fixture) req(ref Ref) Request {
	return Request{Name: "app", URL: f.url, Ref: ref}
}

// seed makes a small history: main with two commits, lightweight tag
// v1.0.0 on the first, annotated v1.1.0 and plain 1.2.0 on the second,
// a branch dev one commit ahead, and a pre-release v2.0.0-rc.1 on dev.
func (f *fixture) seed(t testing.TB) map[string]string {
	t.Helper()
	r := f.repo
	c := map[string]string{}
	r.WriteFile("base/kustomization.yaml", "resources: []\n")
	r.WriteFile("README.md", "first\n")
	c["first"] = r.Commit("first")
	r.Tag("v1.0.0")
	r.WriteFile("README.md", "second\n")
	c["second"] = r.Commit("second")
	c["v1.1.0 object"] = r.AnnotatedTag("v1.1.0", "release 1.1.0")
	r.Tag("1.2.0")
	r.Git("checkout", "-q", "-b", "dev")
	r.WriteFile("dev.txt", "dev\n")
	c["dev"] = r.Commit("dev")
	r.Tag("v2.0.0-rc.1")
	r.Git("checkout", "-q", "main")
	r.Push()
	return c
}

// artifacts lists the artifact directories the cache holds for name.
func artifacts(g Gomega, cache, name string) []string {
	entries, err := os.ReadDir(filepath.Join(cache, name))
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// sshKey is a client key pair for the SSH server.
type sshKey struct {
	pub ssh.PublicKey
	pem []byte
}

func newSSHKey(t testing.TB, passphrase string) sshKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{pub: sshPub, pem: pem.EncodeToMemory(block)}
}

// hasNoSecret asserts that err's message holds none of the secrets.
func hasNoSecret(g Gomega, err error, secrets ...string) {
	g.Expect(err).To(HaveOccurred())
	for _, s := range secrets {
		g.Expect(strings.Contains(err.Error(), s)).To(BeFalse(), "error %q leaks a credential", err)
	}
}
