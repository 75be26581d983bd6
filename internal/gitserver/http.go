package gitserver

import (
	"bytes"
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
)

// HTTPBackend is Debian's path of git's CGI program.
const HTTPBackend = "/usr/lib/git-core/git-http-backend"

// HTTPOptions configure an HTTP server.
type HTTPOptions struct {
	// Username and Password, when set, are required as basic auth.
	Username, Password string
	// BearerToken, when set, is required as "Authorization: Bearer".
	// With basic auth set as well, either is accepted.
	BearerToken string
	// TLS serves HTTPS with a self-signed certificate; see CAPEM.
	TLS bool
	// AllowAnySHA1 lets clients fetch any reachable commit by hash, not
	// only ref tips, as GitHub and GitLab do.
	AllowAnySHA1 bool
	// Stderr receives git http-backend's complaints (such as a missing
	// repository); discarded when nil.
	Stderr io.Writer
	// Addr is the host:port to listen on; 127.0.0.1 on a free port when
	// empty. Pods on a real node reach the host only at its node
	// address, not at 127.0.0.1.
	Addr string
}

// HTTPServer serves every repository under its root directory.
type HTTPServer struct {
	// URL is the server's base: a repository at <root>/x.git is at
	// URL + "/x.git".
	URL string

	srv  *httptest.Server
	mu   sync.Mutex
	reqs Requests
}

// Requests counts the Git requests an HTTP server answered.
type Requests struct {
	// Listings are ref advertisements for fetch (GET
	// info/refs?service=git-upload-pack).
	Listings int
	// Fetches are pack negotiations (POST git-upload-pack).
	Fetches int
	// Pushes are POST git-receive-pack.
	Pushes int
	// Unauthorized are requests refused for missing or wrong credentials.
	Unauthorized int
}

// StartHTTP serves the bare repositories under root over HTTP, on
// 127.0.0.1 unless opts.Addr says otherwise. Pushing is allowed, so tests push through the server too.
func StartHTTP(root string, opts HTTPOptions) (*HTTPServer, error) {
	if _, err := os.Stat(HTTPBackend); err != nil {
		return nil, fmt.Errorf("git http-backend: %w", err)
	}
	env := []string{
		"GIT_PROJECT_ROOT=" + root,
		"GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"HOME=" + root,
		// http-backend refuses anonymous pushes unless told otherwise.
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true",
		"GIT_CONFIG_KEY_1=uploadpack.allowAnySHA1InWant", fmt.Sprintf("GIT_CONFIG_VALUE_1=%t", opts.AllowAnySHA1),
	}
	s := &HTTPServer{}
	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	backend := &cgi.Handler{Path: HTTPBackend, Root: "/", Env: env, Stderr: stderr}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, opts) {
			s.count(func(c *Requests) { c.Unauthorized++ })
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Query().Get("service") == "git-upload-pack":
			s.count(func(c *Requests) { c.Listings++ })
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.count(func(c *Requests) { c.Fetches++ })
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
			s.count(func(c *Requests) { c.Pushes++ })
		}
		backend.ServeHTTP(w, r)
	})
	s.srv = httptest.NewUnstartedServer(h)
	if opts.Addr != "" {
		l, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("git server: %w", err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	if opts.TLS {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.URL = s.srv.URL
	return s, nil
}

func authorized(r *http.Request, opts HTTPOptions) bool {
	if opts.Username == "" && opts.BearerToken == "" {
		return true
	}
	if u, p, ok := r.BasicAuth(); ok && opts.Username != "" {
		return equal(u, opts.Username) && equal(p, opts.Password)
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && opts.BearerToken != "" {
		return equal(tok, opts.BearerToken)
	}
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *HTTPServer) count(f func(*Requests)) {
	s.mu.Lock()
	f(&s.reqs)
	s.mu.Unlock()
}

// Requests returns the counts so far.
func (s *HTTPServer) Requests() Requests {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

// ResetRequests zeroes the counts.
func (s *HTTPServer) ResetRequests() {
	s.mu.Lock()
	s.reqs = Requests{}
	s.mu.Unlock()
}

// CAPEM is the PEM certificate a client must trust to reach a TLS server;
// nil without TLS.
func (s *HTTPServer) CAPEM() []byte {
	if s.srv.TLS == nil {
		return nil
	}
	var buf bytes.Buffer
	for _, c := range s.srv.TLS.Certificates {
		for _, der := range c.Certificate {
			_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
	}
	return buf.Bytes()
}

// Close stops the server and waits for its requests to end.
func (s *HTTPServer) Close() { s.srv.Close() }
