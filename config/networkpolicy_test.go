package config_test

import (
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gyreops/gyre/internal/convention"
)

// TestNetworkPolicy_keepsTenantsFromTheMetrics reads config/default's
// NetworkPolicy as a network plugin does, and asks who may connect to
// which of gyre's ports: stage Pods in a tenant's worker namespace reach
// the authenticated webhook and web ports, never the metrics, which name
// every tenant; Prometheus in its own namespace does.
func TestNetworkPolicy_keepsTenantsFromTheMetrics(t *testing.T) {
	g := NewWithT(t)
	var policy networkingv1.NetworkPolicy
	var deploy appsv1.Deployment
	for _, o := range build(g, "default") {
		switch o.GetKind() {
		case "NetworkPolicy":
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &policy)).To(Succeed())
		case "Deployment":
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &deploy)).To(Succeed())
		}
	}
	g.Expect(policy.Name).NotTo(BeEmpty(), "config/default has a NetworkPolicy")
	g.Expect(policy.Namespace).To(Equal(deploy.Namespace))
	selects, err := metav1.LabelSelectorAsSelector(&policy.Spec.PodSelector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(selects.Matches(labels.Set(deploy.Spec.Template.Labels))).To(BeTrue(), "it selects gyre's Pods")
	g.Expect(policy.Spec.PolicyTypes).To(Equal([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress}), "gyre's own egress is left alone")

	ports := map[string]int32{}
	for _, c := range deploy.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
	}
	// admits reports whether a connection from a Pod in a namespace with
	// nsLabels (nil: from outside the cluster) to port is let in.
	admits := func(nsLabels map[string]string, port string) bool {
		for _, rule := range policy.Spec.Ingress {
			portOK := len(rule.Ports) == 0 || slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool {
				return p.Port.String() == port || p.Port.IntVal == ports[port]
			})
			fromOK := len(rule.From) == 0 || slices.ContainsFunc(rule.From, func(peer networkingv1.NetworkPolicyPeer) bool {
				if nsLabels == nil || peer.NamespaceSelector == nil || peer.PodSelector != nil || peer.IPBlock != nil {
					return false
				}
				sel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
				return err == nil && sel.Matches(labels.Set(nsLabels))
			})
			if portOK && fromOK {
				return true
			}
		}
		return false
	}
	worker := map[string]string{convention.TenantLabel: "shop", convention.ManagedByLabel: convention.ManagedBy, "kubernetes.io/metadata.name": "cyclone-shop-worker"}
	monitoring := map[string]string{"kubernetes.io/metadata.name": "monitoring"}
	for _, tc := range []struct {
		from  string
		ns    map[string]string
		port  string
		admit bool
	}{
		{"a stage Pod", worker, "metrics", false},
		{"a stage Pod", worker, "webhook", true},
		{"a stage Pod", worker, "web", true},
		{"Prometheus", monitoring, "metrics", true},
		{"an SCM outside the cluster", nil, "webhook", true},
		{"a browser outside the cluster", nil, "web", true},
		{"the kubelet's probe", nil, "healthz", true},
		{"a scraper outside the cluster", nil, "metrics", false},
	} {
		g.Expect(ports).To(HaveKey(tc.port))
		g.Expect(admits(tc.ns, tc.port)).To(Equal(tc.admit), "%s to port %s", tc.from, tc.port)
	}
}
