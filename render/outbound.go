package render

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/netguard"
)

// outbound checks the addresses gyre sends requests to for a tenant: the
// Webhook and Slack receivers of a Workflow's notifications and the URL
// of a delegation Stage. An address whose host is a literal IP that the
// engine always refuses (loopback, link-local, metadata, ...) can never
// work, and is most likely an attempt to reach the node: it is an error
// here rather than a failed notification later. Host names are left to
// the engine, which checks the address they resolve to when connecting.
func (c *checker) outbound(i int, obj runtime.Object) {
	switch obj := obj.(type) {
	case *cyclonev1alpha1.Workflow:
		for k, rcv := range obj.Spec.Notification.Receivers {
			if rcv.Type != cyclonev1alpha1.NotificationTypeWebhook && rcv.Type != cyclonev1alpha1.NotificationTypeSlack {
				continue
			}
			for a, addr := range rcv.Addresses {
				if rcv.Type == cyclonev1alpha1.NotificationTypeSlack && !strings.Contains(addr, "://") {
					continue // a channel, posted to through Slack's API
				}
				c.outboundAddress(i, fmt.Sprintf("spec.notification.receivers[%d].addresses[%d]", k, a), addr)
			}
		}
	case *cyclonev1alpha1.Stage:
		if d := obj.Spec.Delegation; d != nil && d.URL != "" {
			u := d.URL
			if !strings.Contains(u, "://") {
				u = "http://" + u // as the engine sends it
			}
			c.outboundAddress(i, "spec.delegation.url", u)
		}
	}
}

// outboundAddress fails field when raw's host is an IP address the engine
// refuses. The message names the host only: the rest of the URL may hold
// a credential.
func (c *checker) outboundAddress(i int, field, raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		return // the engine records a bad address when it sends
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return
	}
	if why := netguard.Classify(ip); why != "" {
		c.fail(i, field, "host %s is %s, which gyre never sends to", ip, why)
	}
}
