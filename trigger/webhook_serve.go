package trigger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Start serves the webhook on opts.Addr until ctx ends, over TLS when a
// certificate and key are configured. It makes the server a
// controller-runtime Runnable: `mgr.Add(server)`.
func (s *WebhookServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("webhook server: listen on %q: %w", s.opts.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the webhook on ln until ctx ends, then drains requests in
// flight for up to ten seconds.
func (s *WebhookServer) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s)
	for pattern, h := range s.opts.Routes {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{
		Handler: mux,
		// Slow senders must not hold connections open: SCMs send small
		// bodies fast.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan error, 1)
	go func() {
		if s.opts.CertFile != "" && s.opts.KeyFile != "" {
			done <- srv.ServeTLS(ln, s.opts.CertFile, s.opts.KeyFile)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	s.opts.Logger.Info("Serving SCM webhooks", "addr", ln.Addr().String(), "tls", s.opts.CertFile != "")
	select {
	case err := <-done:
		return fmt.Errorf("webhook server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhook server: shut down: %w", err)
	}
	return nil
}

// NeedLeaderElection is false: every replica serves webhooks, and run
// names derived from delivery ids keep replicas from starting a run twice.
func (s *WebhookServer) NeedLeaderElection() bool { return false }
