package source

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestGit_sshHandshakeEndsWithTheContext: an SSH server that accepts the
// connection and never starts the handshake holds go-git's dial forever
// unless gyre bounds it. When the call's context ends, the call returns
// and the connection is closed too, so no goroutine waits on it after.
func TestGit_sshHandshakeEndsWithTheContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// accepted and closed receive one value per connection, when the
	// server accepts it and when the client closes it; the server never
	// writes a byte.
	accepted, closed := make(chan struct{}, 8), make(chan struct{}, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						closed <- struct{}{}
						return
					}
				}
			}()
		}
	}()
	auth := &Auth{Identity: newSSHKey(t, "").pem, KnownHosts: []byte("example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")}
	url := "ssh://git@" + l.Addr().String() + "/app.git"

	for _, tc := range []struct {
		name string
		call func(ctx context.Context, git *Git) error
	}{
		{"A listing ends with the context.", func(ctx context.Context, git *Git) error {
			_, _, err := git.Resolve(ctx, url, Ref{Branch: "main"}, auth)
			return err
		}},
		{"A fetch ends with the context.", func(ctx context.Context, git *Git) error {
			_, _, err := git.Fetch(ctx, Request{URL: url, Ref: Ref{Commit: "0123456789abcdef0123456789abcdef01234567"}, Auth: auth}, nil)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx, cancel := context.WithCancel(context.Background())
			git := &Git{CacheDir: t.TempDir()}
			done := make(chan error, 1)
			go func() { done <- tc.call(ctx, git) }()
			// End the context once the server holds the connection.
			g.Eventually(accepted).WithTimeout(time.Minute).Should(Receive())
			cancel()
			var err error
			g.Eventually(done).WithTimeout(time.Minute).Should(Receive(&err))
			g.Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "got %v", err)
			g.Eventually(closed).WithTimeout(time.Minute).Should(Receive(), "the client closes the connection")
		})
	}
}
