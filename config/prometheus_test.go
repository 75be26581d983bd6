package config_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// build builds a directory of config/ as `kubectl apply -k` would.
func build(g Gomega, dir string) []*unstructured.Unstructured {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	g.Expect(err).NotTo(HaveOccurred(), "build config/%s", dir)
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		u, err := r.Map()
		g.Expect(err).NotTo(HaveOccurred())
		objs = append(objs, &unstructured.Unstructured{Object: u})
	}
	return objs
}

func TestPrometheusOverlay_scrapesTheMetricsService(t *testing.T) {
	g := NewWithT(t)
	objs := build(g, "prometheus")
	g.Expect(len(objs)).To(Equal(len(build(g, "default"))+1), "config/default and a ServiceMonitor")

	var monitor *unstructured.Unstructured
	for _, o := range objs {
		if o.GetAPIVersion() == "monitoring.coreos.com/v1" && o.GetKind() == "ServiceMonitor" {
			monitor = o
		}
	}
	g.Expect(monitor).NotTo(BeNil(), "a monitoring.coreos.com/v1 ServiceMonitor")
	g.Expect(monitor.GetNamespace()).To(Equal("gyre-system"), "beside the Service: a ServiceMonitor selects in its own namespace")
	// The few fields of monitoring.coreos.com/v1 that decide what is
	// scraped.
	var spec struct {
		Spec struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(monitor.Object, &spec)).To(Succeed())
	selector, err := metav1.LabelSelectorAsSelector(&spec.Spec.Selector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(selector.Empty()).To(BeFalse())
	g.Expect(spec.Spec.Endpoints).To(HaveLen(1))
	endpoint := spec.Spec.Endpoints[0]

	var selected, ports []string
	for _, o := range objs {
		if o.GetKind() != "Service" || o.GetNamespace() != monitor.GetNamespace() || !selector.Matches(labels.Set(o.GetLabels())) {
			continue
		}
		svc := &corev1.Service{}
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, svc)).To(Succeed())
		selected = append(selected, svc.Name)
		for _, p := range svc.Spec.Ports {
			ports = append(ports, p.Name)
		}
	}
	g.Expect(selected).To(Equal([]string{"gyre-metrics"}), "the metrics Service, not the webhook one")
	g.Expect(ports).To(ContainElement(endpoint.Port), "the endpoint names a port of the Service")
	g.Expect(endpoint.Path).To(Equal("/metrics"))
}
