package netguard

import (
	"fmt"
	"net/netip"
)

// metadata are the cloud providers' instance metadata addresses, which hand
// out the node's credentials to whoever asks.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// thisNetwork is 0.0.0.0/8, which Linux connects to the host itself.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// Classify says why ip is refused whatever the configuration: "a loopback
// address", "a cloud metadata address" and so on; "" when it is not.
// IPv4-mapped IPv6 addresses are judged by the IPv4 address they carry.
func Classify(ip netip.Addr) string {
	ip = ip.Unmap()
	for _, m := range metadata {
		if ip == m {
			return "a cloud metadata address"
		}
	}
	switch {
	case !ip.IsValid():
		return "not an IP address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified(), ip.Is4() && thisNetwork.Contains(ip):
		return "an unspecified address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	}
	return ""
}

// RefusedError is the error of a connection the policy refuses.
type RefusedError struct {
	// Addr is the address that was about to be connected to.
	Addr netip.Addr
	// Why is what the address is, "a loopback address" for instance.
	Why string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused: %s is %s", e.Addr, e.Why)
}
