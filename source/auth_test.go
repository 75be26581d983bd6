package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/gyreops/gyre/internal/gitserver"
)

func TestGit_Fetch_httpAuth(t *testing.T) {
	const user, password, token = "alice", "correct-horse-battery", "tok-7f3a9c2e"
	f := newFixture(t, gitserver.HTTPOptions{Username: user, Password: password, BearerToken: token, TLS: true})
	f.seed(t)
	ca := f.srv.CAPEM()
	tests := []struct {
		name   string
		url    string
		auth   *Auth
		reason Reason // "" means success
	}{
		{"Basic auth over TLS with the server's CA succeeds.", f.url, &Auth{Username: user, Password: password, CAFile: ca}, ""},
		{"A bearer token succeeds.", f.url, &Auth{BearerToken: token, CAFile: ca}, ""},
		{"A wrong password is AuthenticationFailed.", f.url, &Auth{Username: user, Password: "wrong-password", CAFile: ca}, AuthenticationFailed},
		{"A wrong token is AuthenticationFailed.", f.url, &Auth{BearerToken: "tok-wrong-000", CAFile: ca}, AuthenticationFailed},
		{"No credentials is AuthenticationFailed.", f.url, &Auth{CAFile: ca}, AuthenticationFailed},
		{"An untrusted certificate is FetchFailed.", f.url, &Auth{Username: user, Password: password}, FetchFailed},
		{"Credentials in the URL are used and never shown.",
			strings.Replace(f.url, "https://", "https://alice:wrong-password@", 1), &Auth{CAFile: ca}, AuthenticationFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			git := &Git{CacheDir: t.TempDir()}
			art, _, err := git.Fetch(context.Background(), Request{URL: tt.url, Auth: tt.auth}, nil)
			if tt.reason == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(filepath.Join(art.Dir, "README.md")).To(BeAnExistingFile())
				return
			}
			g.Expect(ReasonOf(err)).To(Equal(tt.reason), "got %v", err)
			hasNoSecret(g, err, password, token, "wrong-password", "tok-wrong-000")
		})
	}
}

func TestGit_Fetch_sshAuth(t *testing.T) {
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "app.git")
	repo.WriteFile("README.md", "over ssh\n")
	repo.Commit("first")
	repo.Push()
	plain := newSSHKey(t, "")
	encrypted := newSSHKey(t, "key-passphrase-42")
	stranger := newSSHKey(t, "")
	srv, err := gitserver.StartSSH(root, plain.pub, encrypted.pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	other, err := gitserver.StartSSH(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)

	url := srv.URL("app.git")
	tests := []struct {
		name   string
		data   map[string][]byte
		reason Reason
	}{
		{"A key the server knows succeeds.", map[string][]byte{
			"identity": plain.pem, "known_hosts": srv.KnownHosts()}, ""},
		{"An encrypted key with its password succeeds.", map[string][]byte{
			"identity": encrypted.pem, "password": []byte("key-passphrase-42"), "known_hosts": srv.KnownHosts()}, ""},
		{"A hashed known_hosts entry matches.", map[string][]byte{
			"identity": plain.pem, "known_hosts": hashedKnownHosts(t, srv)}, ""},
		{"A key the server does not know is AuthenticationFailed.", map[string][]byte{
			"identity": stranger.pem, "known_hosts": srv.KnownHosts()}, AuthenticationFailed},
		{"A host key missing from known_hosts is UnknownHostKey.", map[string][]byte{
			"identity": plain.pem, "known_hosts": []byte("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")}, UnknownHostKey},
		{"Another host's key under this address is UnknownHostKey.", map[string][]byte{
			"identity": plain.pem, "known_hosts": []byte(strings.Replace(string(other.KnownHosts()), other.Addr, srv.Addr, 1))}, UnknownHostKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			auth, err := AuthFromSecret(tt.data, url)
			g.Expect(err).NotTo(HaveOccurred())
			git := &Git{CacheDir: t.TempDir()}
			art, _, err := git.Fetch(context.Background(), Request{URL: url, Auth: auth}, nil)
			if tt.reason == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(os.ReadFile(filepath.Join(art.Dir, "README.md"))).To(BeEquivalentTo("over ssh\n"))
				// Polling again over SSH lists and fetches nothing.
				_, fetched, err := git.Fetch(context.Background(), Request{URL: url, Auth: auth}, &art)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(fetched).To(BeFalse())
				g.Expect(git.Stats()).To(Equal(Stats{Listings: 2, Fetches: 1}))
				return
			}
			g.Expect(ReasonOf(err)).To(Equal(tt.reason), "got %v", err)
			hasNoSecret(g, err, "key-passphrase-42", "PRIVATE KEY")
		})
	}
}

// hashedKnownHosts is the server's known_hosts line with the host hashed,
// as ssh-keygen -H writes it.
func hashedKnownHosts(t *testing.T, srv *gitserver.SSHServer) []byte {
	t.Helper()
	fields := strings.SplitN(strings.TrimSpace(string(srv.KnownHosts())), " ", 2)
	return []byte(knownhosts.HashHostname(fields[0]) + " " + fields[1] + "\n")
}

func TestAuthFromSecret(t *testing.T) {
	key := newSSHKey(t, "pw-for-the-key")
	kh := []byte("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
	tests := []struct {
		name    string
		data    map[string][]byte
		url     string
		wantErr string
	}{
		{"Basic credentials for HTTPS are accepted.", map[string][]byte{"username": []byte("u"), "password": []byte("p")}, "https://h/r.git", ""},
		{"A bearer token for HTTPS is accepted.", map[string][]byte{"bearerToken": []byte("t")}, "https://h/r.git", ""},
		{"An empty Secret means anonymous HTTPS.", map[string][]byte{}, "https://h/r.git", ""},
		{"A username without a password is refused.", map[string][]byte{"username": []byte("u")}, "https://h/r.git", "needs both"},
		{"Basic auth and a token together are refused.", map[string][]byte{"username": []byte("u"), "password": []byte("p"), "bearerToken": []byte("t")}, "https://h/r.git", "keep one"},
		{"SSH without known_hosts is refused.", map[string][]byte{"identity": key.pem, "password": []byte("pw-for-the-key")}, "ssh://git@127.0.0.1:2222/r.git", "known_hosts"},
		{"SSH without an identity is refused.", map[string][]byte{"known_hosts": kh}, "git@127.0.0.1:r.git", "identity"},
		{"An encrypted identity with the wrong password is refused.", map[string][]byte{"identity": key.pem, "password": []byte("nope-wrong"), "known_hosts": kh}, "ssh://git@127.0.0.1:2222/r.git", "parse"},
		{"An encrypted identity with its password is accepted.", map[string][]byte{"identity": key.pem, "password": []byte("pw-for-the-key"), "known_hosts": kh}, "ssh://git@127.0.0.1:2222/r.git", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := AuthFromSecret(tt.data, tt.url)
			if tt.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
			g.Expect(ReasonOf(err)).To(Equal(AuthenticationFailed))
			hasNoSecret(g, err, "pw-for-the-key", "nope-wrong")
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"A password is hidden with the user.", "https://alice:s3cret@example.com/org/repo.git", "https://***@example.com/org/repo.git"},
		{"A token as user is hidden.", "https://ghp_abc123@example.com/r.git", "https://***@example.com/r.git"},
		{"A URL without userinfo is unchanged.", "https://example.com/r.git", "https://example.com/r.git"},
		{"An scp-like URL keeps its user, which is no secret.", "git@example.com:org/r.git", "git@example.com:org/r.git"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(RedactURL(tt.in)).To(Equal(tt.want))
		})
	}
}

func TestError_neverShowsTheCredentialsOfTheURL(t *testing.T) {
	g := NewWithT(t)
	raw := "https://alice:hunter2-long@127.0.0.1:1/r.git"
	err := newError(FetchFailed, raw, errors.New(`Get "`+raw+`/info/refs": refused for alice:hunter2-long`))
	g.Expect(err.Error()).NotTo(ContainSubstring("hunter2-long"))
	g.Expect(err.Error()).To(ContainSubstring("https://***@127.0.0.1:1/r.git"))
}
