package gitserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
)

func TestHTTPServer_cloneThroughTheRealBackend(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	r := NewRepo(t, root, "app.git")
	r.WriteFile("a.txt", "hello\n")
	head := r.Commit("first")
	r.Push()

	srv, err := StartHTTP(root, HTTPOptions{Username: "alice", Password: "s3cret"})
	g.Expect(err).NotTo(HaveOccurred())
	defer srv.Close()

	out, err := run(t.TempDir(), nil, "ls-remote", strings.Replace(srv.URL, "http://", "http://alice:s3cret@", 1)+"/app.git")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring(head + "\trefs/heads/main"))
	g.Expect(srv.Requests().Listings).To(Equal(1))

	_, err = run(t.TempDir(), nil, "ls-remote", strings.Replace(srv.URL, "http://", "http://alice:wrong@", 1)+"/app.git")
	g.Expect(err).To(HaveOccurred())
	g.Expect(srv.Requests().Unauthorized).To(BeNumerically(">", 0))
}

func TestSSHServer_cloneWithAnAuthorizedKey(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no OpenSSH client to test against; source tests cover go-git's")
	}
	g := NewWithT(t)
	root := t.TempDir()
	r := NewRepo(t, root, "app.git")
	r.WriteFile("a.txt", "hello\n")
	head := r.Commit("first")
	r.Push()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	sshPub, err := ssh.NewPublicKey(pub)
	g.Expect(err).NotTo(HaveOccurred())
	block, err := ssh.MarshalPrivateKey(priv, "")
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	g.Expect(os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)).To(Succeed())
	khFile := filepath.Join(dir, "known_hosts")

	srv, err := StartSSH(root, sshPub)
	g.Expect(err).NotTo(HaveOccurred())
	defer srv.Close()
	g.Expect(os.WriteFile(khFile, srv.KnownHosts(), 0o600)).To(Succeed())

	cmd := exec.Command("git", "ls-remote", srv.URL("app.git"))
	cmd.Env = gitEnv([]string{"GIT_SSH_COMMAND=ssh -i " + keyFile + " -o UserKnownHostsFile=" + khFile + " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"})
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(ContainSubstring(head + "\trefs/heads/main"))
}

func TestFastImport_writesTheHistoryItIsAskedFor(t *testing.T) {
	g := NewWithT(t)
	bare := filepath.Join(t.TempDir(), "big.git")
	g.Expect(InitBare(bare)).To(Succeed())
	g.Expect(FastImport(bare, 100, 10)).To(Succeed())
	count, err := run(bare, nil, "rev-list", "--count", "main")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(count).To(Equal("100"))
	tags, err := run(bare, nil, "tag")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Fields(tags)).To(HaveLen(10))
}
