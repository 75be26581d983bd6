package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/kubeauth"
	"github.com/gyreops/gyre/internal/runlogs"
)

// DefaultAccessTTL is how long an answer of the API server about a token
// or a right is reused: long enough that a page listing the runs of many
// namespaces, reloaded while a run goes on, costs the API server a few
// reviews a minute rather than dozens a view; short enough that a revoked
// right stops showing data within seconds.
const DefaultAccessTTL = 10 * time.Second

// Options configures the web view.
type Options struct {
	// Addr is where the server listens, such as ":9090".
	Addr string
	// Listener, when set, is listened on instead of Addr: a caller that
	// picks a free port knows it before the server starts.
	Listener net.Listener
	// TrustLocal serves every page to whoever reaches Addr, with the
	// controller's own rights and no token: for gyre dev, whose server
	// listens on 127.0.0.1 of the developer's machine. Never on a cluster.
	TrustLocal bool
	// Logs holds the stage logs kept after their Pods are gone; none are
	// shown when nil.
	Logs runlogs.Store
	// AccessTTL overrides DefaultAccessTTL.
	AccessTTL time.Duration
	// Clock is the time pages are rendered at; the real one when nil.
	Clock clock.PassiveClock
}

// Server is the web view; it is a manager.Runnable.
type Server struct {
	reader client.Reader
	// secrets reads the credentials of execution clusters from the API
	// server, never from a cache.
	secrets   client.Reader
	clientset kubernetes.Interface
	access    *kubeauth.Cache
	o         Options
	pages     map[string]*template.Template
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns the web view. reader lists and gets gyre's objects (the
// manager's cache will do); secrets reads ExecutionClusters and their
// Secrets, for the logs of stages that run on another cluster, from the
// API server; clientset reviews tokens and rights and reads pods/log.
func New(reader, secrets client.Reader, clientset kubernetes.Interface, o Options) (*Server, error) {
	if o.AccessTTL == 0 {
		o.AccessTTL = DefaultAccessTTL
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	return &Server{
		reader:    reader,
		secrets:   secrets,
		clientset: clientset,
		access:    &kubeauth.Cache{Reviewer: kubeauth.Reviewer{Client: clientset}, TTL: o.AccessTTL, Clock: o.Clock},
		o:         o,
		pages:     pages,
	}, nil
}

// parseTemplates parses each page together with the shared layout.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", n, err)
		}
		pages[n[len("templates/"):]] = t
	}
	return pages, nil
}

// Handler serves every page.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		redirect(w, "runs", http.StatusFound)
	})
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /tenants", s.guard(s.tenants))
	mux.HandleFunc("GET /repositories", s.guard(s.repositories))
	mux.HandleFunc("GET /runs", s.guard(s.runs))
	mux.HandleFunc("GET /runs/{namespace}/{name}", s.guard(s.run))
	mux.HandleFunc("GET /runs/{namespace}/{name}/logs/{stage}", s.guard(s.stageLog))
	return securityHeaders(mux)
}

// redirect sends the browser to target relative to the request, as the
// API server's service proxy needs; http.Redirect would make it absolute.
func redirect(w http.ResponseWriter, target string, code int) {
	w.Header().Set("Location", target)
	w.WriteHeader(code)
}

// securityHeaders keeps other sites from framing the pages or running
// scripts in them: the pages show what the viewer's token may read.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.o.Listener != nil {
		return s.Serve(ctx, s.o.Listener)
	}
	ln, err := net.Listen("tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("web view: listen on %s: %w", s.o.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ctrl.LoggerFrom(ctx).Info("Serving the web view", "addr", ln.Addr().String(), "trustLocal", s.o.TrustLocal)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Live logs stream until their container ends: do not wait for them.
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// NeedLeaderElection is false: every replica serves the view, as it
// serves webhooks.
func (s *Server) NeedLeaderElection() bool { return false }

// NewForManager returns the web view of mgr's cluster: it lists through
// the manager's cache, and reads execution cluster credentials from the
// API server.
func NewForManager(mgr ctrl.Manager, o Options) (*Server, error) {
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("web view: %w", err)
	}
	return New(mgr.GetClient(), mgr.GetAPIReader(), cs, o)
}
