package source

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/net/proxy"
)

// go-git opens an SSH connection without the caller's context: it dials
// with a context of its own and runs the SSH handshake with no deadline at
// all, so a server that accepts and never answers holds the connection
// and its goroutine forever, long after the fetch gave up. Its one hook
// into that dial is the proxy: a proxy URL whose scheme is registered
// with golang.org/x/net/proxy gets to make the connection. gyre registers
// such a scheme and, for each SSH call, passes a URL naming the call's
// context, so the connection is dialled with that context and closed the
// moment it ends: the Repository's timeout bounds the dial, the handshake
// and the transfer.

// sshDialScheme is the proxy scheme of gyre's context-bound SSH dialer.
const sshDialScheme = "gyre-ssh-dial"

// sshDials maps the host of a dialer URL to the context of the SSH call
// that passed it. A registry, against the usual rule, because the proxy
// scheme is process-wide and only a URL string reaches the dialer.
var (
	sshDials   sync.Map // string → context.Context
	sshDialSeq atomic.Uint64
)

func init() {
	// Registered once, before any goroutine can read the scheme table,
	// which has no lock.
	proxy.RegisterDialerType(sshDialScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		v, ok := sshDials.Load(u.Host)
		if !ok {
			return nil, errors.New("ssh dial: the call that asked for it has ended")
		}
		return ctxDialer{ctx: v.(context.Context)}, nil
	})
}

// sshProxy returns the proxy options that make go-git dial an SSH remote
// bound to ctx, and the function that forgets them when the call ends.
// For other protocols it returns no proxy.
func sshProxy(ctx context.Context, ep *transport.Endpoint) (transport.ProxyOptions, func()) {
	if ep.Protocol != "ssh" {
		return transport.ProxyOptions{}, func() {}
	}
	id := strconv.FormatUint(sshDialSeq.Add(1), 10)
	sshDials.Store(id, ctx)
	return transport.ProxyOptions{URL: sshDialScheme + "://" + id}, func() { sshDials.Delete(id) }
}

// ctxDialer dials with the SSH call's context and closes the connection
// when that context ends.
type ctxDialer struct {
	// ctx is the SSH call's, kept for the length of one dial because
	// go-git's proxy hook passes only its own context.
	ctx context.Context
}

// Dial dials addr bound to the call's context.
func (d ctxDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext dials addr; it ends with either context, and the
// connection is closed when the call's context ends.
func (d ctxDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dialCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopDial := context.AfterFunc(d.ctx, cancel)
	defer stopDial()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dialCtx, network, addr)
	if err != nil {
		if d.ctx.Err() != nil {
			return nil, d.ctx.Err()
		}
		return nil, err
	}
	stop := context.AfterFunc(d.ctx, func() { conn.Close() })
	return &boundConn{Conn: conn, stop: stop}, nil
}

// boundConn is a connection that its context closes.
type boundConn struct {
	net.Conn
	stop func() bool
}

// Close closes the connection and releases the context's hold on it.
func (c *boundConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
