package netguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy says which addresses requests made for tenants may reach. The
// zero Policy refuses only the addresses Classify names.
type Policy struct {
	// Allow lists host names, CIDRs and IP:port addresses that are
	// reached even when they would be refused, such as an in-cluster
	// receiver. A host name is matched as the request names it, before
	// DNS resolution. An IP:port entry allows that one port only, for a
	// receiver on loopback (gyre dev's) that must not open every other
	// local service.
	Allow []string
	// ClusterCIDRs are the cluster's Service and Pod ranges, refused like
	// loopback: a tenant must not reach in-cluster services through gyre.
	ClusterCIDRs []string
}

// Guard checks addresses against a parsed Policy.
type Guard struct {
	allowHosts map[string]bool
	allowAddrs map[netip.AddrPort]bool
	allowNets  []netip.Prefix
	cluster    []netip.Prefix
}

// New parses p; an entry that is neither a CIDR, an IP address nor a host
// name is an error naming it.
func New(p Policy) (*Guard, error) {
	g := &Guard{allowHosts: map[string]bool{}, allowAddrs: map[netip.AddrPort]bool{}}
	for _, a := range p.Allow {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if pfx, err := parsePrefix(a); err == nil {
			g.allowNets = append(g.allowNets, pfx)
			continue
		}
		if ap, err := netip.ParseAddrPort(a); err == nil {
			g.allowAddrs[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
			continue
		}
		if strings.ContainsAny(a, "/: ") {
			return nil, fmt.Errorf("allowed outbound %q: neither a host name nor a CIDR", a)
		}
		g.allowHosts[strings.ToLower(strings.TrimSuffix(a, "."))] = true
	}
	for _, c := range p.ClusterCIDRs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		pfx, err := parsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("cluster CIDR %q: %w", c, err)
		}
		g.cluster = append(g.cluster, pfx)
	}
	return g, nil
}

// parsePrefix reads a CIDR, or a single address as a prefix of its own.
func parsePrefix(s string) (netip.Prefix, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		ip = ip.Unmap()
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return pfx.Masked(), nil
}

// Check returns a *RefusedError when ip may not be connected to.
func (g *Guard) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, n := range g.allowNets {
		if n.Contains(ip) {
			return nil
		}
	}
	if why := Classify(ip); why != "" {
		return &RefusedError{Addr: ip, Why: why}
	}
	for _, n := range g.cluster {
		if n.Contains(ip) {
			return &RefusedError{Addr: ip, Why: "in the cluster's range " + n.String()}
		}
	}
	return nil
}

// hostAllowed reports whether host is listed by name.
func (g *Guard) hostAllowed(host string) bool {
	return g.allowHosts[strings.ToLower(strings.TrimSuffix(host, "."))]
}

// control checks the address a socket is about to connect to: the one DNS
// resolved to, so a name cannot point around the policy.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused: cannot read address %q: %w", address, err)
	}
	if g.allowAddrs[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] {
		return nil
	}
	return g.Check(ap.Addr())
}

// Transport returns a transport whose every connection passes Check, but
// those to hosts the policy lists by name. It ignores proxies from the
// environment: through a proxy, the address connected to would be the
// proxy's and not the one checked.
func (g *Guard) Transport() *http.Transport {
	checked := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	plain := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, err := net.SplitHostPort(addr); err == nil && g.hostAllowed(host) {
				return plain.DialContext(ctx, network, addr)
			}
			return checked.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// Client returns a client on Transport that follows no redirect: a 3xx is
// returned to the caller as it is, which treats it as a failure. A
// redirect could lead anywhere, a refused address through an allowed host
// among others. timeout bounds each request; 0 leaves it to the caller's
// context.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: g.Transport(),
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Reason is a short account of a failed request, fit for a status: it
// names no URL, no credential and nothing the server said. Examples:
// "refused: 127.0.0.1 is a loopback address", "timeout", "no such host".
func Reason(err error) string {
	var refused *RefusedError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &refused):
		return refused.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host"
		}
		return "DNS lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, new(*tls.CertificateVerificationError)):
		return "TLS certificate not trusted"
	}
	return "request failed"
}

// StatusReason is the reason for an answer outside 2xx: "HTTP 500", or for
// a redirect, which is not followed, "HTTP 302 redirect not followed".
func StatusReason(code int) string {
	if code/100 == 3 {
		return fmt.Sprintf("HTTP %d redirect not followed", code)
	}
	return fmt.Sprintf("HTTP %d", code)
}

// RedactURL is raw without its user information, query and fragment,
// which may carry credentials: fit for a status or a log.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}
