package netguard

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name, ip, want string
	}{
		{"IPv4 loopback is refused.", "127.0.0.1", "a loopback address"},
		{"Any address of 127/8 is loopback.", "127.42.0.9", "a loopback address"},
		{"IPv6 loopback is refused.", "::1", "a loopback address"},
		{"IPv4-mapped loopback is refused as loopback.", "::ffff:127.0.0.1", "a loopback address"},
		{"The AWS, GCP and Azure metadata address is named as such.", "169.254.169.254", "a cloud metadata address"},
		{"The IPv4-mapped metadata address is refused.", "::ffff:169.254.169.254", "a cloud metadata address"},
		{"The AWS IPv6 metadata address is refused.", "fd00:ec2::254", "a cloud metadata address"},
		{"The Alibaba metadata address is refused.", "100.100.100.200", "a cloud metadata address"},
		{"Other IPv4 link-local addresses are refused.", "169.254.1.1", "a link-local address"},
		{"IPv6 link-local addresses are refused.", "fe80::1", "a link-local address"},
		{"The unspecified IPv4 address is refused.", "0.0.0.0", "an unspecified address"},
		{"Addresses of 0/8 reach the host and are refused.", "0.1.2.3", "an unspecified address"},
		{"The unspecified IPv6 address is refused.", "::", "an unspecified address"},
		{"IPv4 multicast is refused.", "224.0.0.1", "a multicast address"},
		{"IPv6 multicast is refused.", "ff02::1", "a multicast address"},
		{"A public IPv4 address is allowed.", "93.184.216.34", ""},
		{"A public IPv6 address is allowed.", "2606:2800:220:1::1", ""},
		{"Other CGNAT addresses are allowed.", "100.100.100.201", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Classify(netip.MustParseAddr(tc.ip))).To(Equal(tc.want))
		})
	}
}

func TestGuard_Check(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		ip     string
		want   string // "" for allowed
	}{
		{"A Service address is refused.", Policy{ClusterCIDRs: []string{"10.96.0.0/12"}}, "10.96.0.10",
			"refused: 10.96.0.10 is in the cluster's range 10.96.0.0/12"},
		{"A Pod address given IPv4-mapped is refused.", Policy{ClusterCIDRs: []string{"10.244.0.0/16"}}, "::ffff:10.244.3.4",
			"refused: 10.244.3.4 is in the cluster's range 10.244.0.0/16"},
		{"An address outside the cluster's ranges is allowed.", Policy{ClusterCIDRs: []string{"10.96.0.0/12"}}, "10.200.0.1", ""},
		{"Loopback is refused by default.", Policy{}, "127.0.0.1", "refused: 127.0.0.1 is a loopback address"},
		{"A listed CIDR allows loopback.", Policy{Allow: []string{"127.0.0.0/8"}}, "127.0.0.1", ""},
		{"A listed address allows a Service address.", Policy{Allow: []string{"10.96.0.10"}, ClusterCIDRs: []string{"10.96.0.0/12"}}, "10.96.0.10", ""},
		{"A listed address allows only itself.", Policy{Allow: []string{"10.96.0.10"}, ClusterCIDRs: []string{"10.96.0.0/12"}}, "10.96.0.11",
			"refused: 10.96.0.11 is in the cluster's range 10.96.0.0/12"},
		{"A listed host name allows no address by itself.", Policy{Allow: []string{"localhost"}}, "127.0.0.1", "refused: 127.0.0.1 is a loopback address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			guard, err := New(tc.policy)
			g.Expect(err).NotTo(HaveOccurred())
			err = guard.Check(netip.MustParseAddr(tc.ip))
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(tc.want))
		})
	}
}

func TestNew_refusesBadEntries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
		want   string
	}{
		{"A malformed CIDR in the allow list is an error naming it.", Policy{Allow: []string{"10.0.0.0/99"}}, `allowed outbound "10.0.0.0/99": neither a host name nor a CIDR`},
		{"A cluster range that is no CIDR is an error naming it.", Policy{ClusterCIDRs: []string{"pods"}}, `cluster CIDR "pods"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := New(tc.policy)
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

// otherPort is a port that is not port.
func otherPort(port string) string {
	if port == "1" {
		return "2"
	}
	return "1"
}

// receiver is a server on 127.0.0.1 that counts the requests it gets.
func receiver(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestGuard_Client(t *testing.T) {
	srv, calls := receiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	byName := "http://localhost:" + port + "/hook"
	byIP := "http://127.0.0.1:" + port + "/hook"
	for _, tc := range []struct {
		name   string
		policy Policy
		url    string
		want   string // the Reason, "" when the request goes through
	}{
		{"A request to 127.0.0.1 is refused before connecting.", Policy{}, byIP, "refused: 127.0.0.1 is a loopback address"},
		{"A request to localhost is refused after DNS resolution.", Policy{}, byName, "refused: 127.0.0.1 is a loopback address"},
		{"A request to 127.0.0.1 goes through once its CIDR is listed.", Policy{Allow: []string{"127.0.0.0/8"}}, byIP, ""},
		{"A request to localhost goes through once the host is listed.", Policy{Allow: []string{"localhost"}}, byName, ""},
		{"Listing localhost by name does not allow 127.0.0.1.", Policy{Allow: []string{"localhost"}}, byIP, "refused: 127.0.0.1 is a loopback address"},
		{"A request to 127.0.0.1 goes through when its address and port are listed.", Policy{Allow: []string{"127.0.0.1:" + port}}, byIP, ""},
		{"Listing one loopback port does not allow another.", Policy{Allow: []string{"127.0.0.1:" + otherPort(port)}}, byIP, "refused: 127.0.0.1 is a loopback address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			// Proxies from the environment must not carry the request
			// around the check.
			t.Setenv("HTTP_PROXY", srv.URL)
			t.Setenv("NO_PROXY", "")
			guard, err := New(tc.policy)
			g.Expect(err).NotTo(HaveOccurred())
			before := calls.Load()
			resp, err := guard.Client(5*time.Second).Post(tc.url, "application/json", strings.NewReader("{}"))
			if tc.want != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(Reason(err)).To(Equal(tc.want))
				g.Expect(calls.Load()).To(Equal(before), "the receiver is never called")
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			resp.Body.Close()
			g.Expect(resp.StatusCode).To(Equal(http.StatusNoContent))
			g.Expect(calls.Load()).To(Equal(before + 1))
		})
	}
}

func TestGuard_Client_followsNoRedirect(t *testing.T) {
	g := NewWithT(t)
	target, targetCalls := receiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	guard, err := New(Policy{Allow: []string{"127.0.0.1"}})
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := guard.Client(5*time.Second).Post(srv.URL, "application/json", strings.NewReader("{}"))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusFound))
	g.Expect(StatusReason(resp.StatusCode)).To(Equal("HTTP 302 redirect not followed"))
	g.Expect(targetCalls.Load()).To(BeZero())
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ name, url, want string }{
		{"User information is left out.", "https://user:s3cret@hooks.example.com/x", "https://hooks.example.com/x"},
		{"The query is left out.", "https://hooks.example.com/x?token=s3cret", "https://hooks.example.com/x"},
		{"A string that is no URL is not echoed.", "::s3cret", "<invalid URL>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(RedactURL(tc.url)).To(Equal(tc.want))
		})
	}
}
