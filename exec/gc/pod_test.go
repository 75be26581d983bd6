package gc

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
)

var update = flag.Bool("update", false, "rewrite the golden GC Pods in testdata")

func testRun() *cyclonev1alpha1.WorkflowRun {
	return &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Name: "run1", Namespace: "cyclone-acme", UID: "uid-1"}}
}

// config is the GC Pod configuration of the engine's defaults.
func config() PodConfig {
	return PodConfig{Image: "busybox:1.37", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}}
}

func TestPodConfig_Pod(t *testing.T) {
	tests := []struct {
		name   string
		level  string
		root   bool
		passes string
	}{
		{name: "Under a restricted Tenant the GC Pod runs as non-root and passes restricted.", level: podsecurity.Restricted, passes: podsecurity.Restricted},
		{name: "Under a baseline Tenant the GC Pod runs as root, to delete what root workloads wrote, and passes baseline.", level: podsecurity.Baseline, root: true, passes: podsecurity.Baseline},
		{name: "A Tenant with no level is baseline.", level: "", root: true, passes: podsecurity.Baseline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := config().Pod(testRun(), "cyclone-acme-worker", "cyclone-pvc-acme", tt.level)
			g.Expect(pod.Spec.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
			sc := pod.Spec.Containers[0].SecurityContext
			g.Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
			g.Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
			g.Expect(sc.RunAsNonRoot == nil).To(Equal(tt.root))
			g.Expect(podsecurity.Check(tt.passes, &pod.ObjectMeta, &pod.Spec)).To(BeEmpty())
		})
	}
}

// TestPodConfig_golden pins every field of the GC Pod, which runs in the
// tenant's worker namespace with its PVC (go test ./exec/gc -update).
func TestPodConfig_golden(t *testing.T) {
	c := config()
	c.Labels, c.Annotations = map[string]string{"pool": "gc"}, map[string]string{"note": "gc"}
	for _, level := range []string{podsecurity.Baseline, podsecurity.Restricted} {
		t.Run("gc-"+level+".yaml", func(t *testing.T) {
			g := NewWithT(t)
			out, err := yaml.Marshal(c.Pod(testRun(), "cyclone-acme-worker", "cyclone-pvc-acme", level))
			g.Expect(err).NotTo(HaveOccurred())
			out = append([]byte("---\n"), out...)
			path := filepath.Join("testdata", "gc-"+level+".yaml")
			if *update {
				g.Expect(os.WriteFile(path, out, 0o644)).To(Succeed())
			}
			want, err := os.ReadFile(path)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(out)).To(Equal(string(want)))
		})
	}
}
