package podbuild

import (
	"errors"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
)

func TestStagePod_leastPrivilege(t *testing.T) {
	cfg := builder()
	// restrictedWorkload is a stage whose own containers pass restricted,
	// with everything gyre adds: input and output resolvers, the gyre
	// installer, the coordinator.
	restrictedWorkload := func() Input {
		in := podInput()
		in.PodSecurity = podsecurity.Restricted
		in.Resources["tar"] = &cyclonev1alpha1.Resource{Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.HTTPResourceType}}
		in.Stage.Spec.Pod.Outputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "tar", Path: "/out/tar"}}
		in.Stage.Spec.Pod.Spec.Containers[0].SecurityContext = HelperSecurityContext()
		return in
	}
	tests := []struct {
		name  string
		input func() Input
		check func(g Gomega, pod *corev1.Pod, err error)
	}{
		{
			name:  "A restricted workload with all of gyre's helpers passes restricted.",
			input: restrictedWorkload,
			check: func(g Gomega, pod *corev1.Pod, err error) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.Spec.InitContainers).To(ContainElements(HaveField("Name", "i-src"), HaveField("Name", toolsName)))
				g.Expect(pod.Spec.Containers).To(ContainElements(HaveField("Name", "o-tar"), HaveField("Name", CoordinatorName)))
				g.Expect(podsecurity.Check(podsecurity.Restricted, &pod.ObjectMeta, &pod.Spec)).To(BeEmpty())
			},
		},
		{
			name: "Every helper container runs as a non-root user, without privilege escalation or capabilities.",
			input: func() Input {
				in := restrictedWorkload()
				in.Stage.Spec.Pod.Spec.Containers[0].SecurityContext = nil
				return in
			},
			check: func(g Gomega, pod *corev1.Pod, err error) {
				g.Expect(err).NotTo(HaveOccurred())
				for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers[1:]) {
					g.Expect(c.SecurityContext).To(Equal(HelperSecurityContext()), c.Name)
				}
				g.Expect(pod.Spec.Containers[0].SecurityContext).To(BeNil(), "the workload's own is the Stage's")
				g.Expect(pod.Spec.SecurityContext.FSGroup).To(HaveValue(BeEquivalentTo(HelperUID)), "helpers write to the volumes the workload writes to")
			},
		},
		{
			name:  "The workload gets no API token unless its Stage asks for one.",
			input: podInput,
			check: func(g Gomega, pod *corev1.Pod, err error) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.Spec.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
			},
		},
		{
			name: "A Stage that asks for an API token gets one.",
			input: func() Input {
				in := podInput()
				in.Stage.Spec.Pod.Spec.AutomountServiceAccountToken = ptr.To(true)
				return in
			},
			check: func(g Gomega, pod *corev1.Pod, err error) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.Spec.AutomountServiceAccountToken).To(HaveValue(BeTrue()))
			},
		},
		{
			name: "An image output under a baseline Tenant is refused with how to allow it.",
			input: func() Input {
				in := podInput()
				in.PodSecurity = ""
				return in
			},
			check: func(g Gomega, pod *corev1.Pod, err error) {
				g.Expect(err).To(MatchError("stage build outputs image resource img: it needs a privileged Docker daemon; " +
					"set podSecurity: privileged on Tenant acme to allow it, or build images without Docker (gyre controller --no-dind)"))
				var invalid *InvalidError
				g.Expect(errors.As(err, &invalid)).To(BeTrue())
			},
		},
		{
			name:  "A privileged Tenant's image output gets the privileged Docker daemon, and its image resolver reaches it as root.",
			input: podInput,
			check: func(g Gomega, pod *corev1.Pod, err error) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.Spec.InitContainers).To(ContainElement(HaveField("Name", dindName)))
				i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == "o-img" })
				g.Expect(pod.Spec.Containers[i].SecurityContext).To(BeNil())
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			pod, _, err := cfg.StagePod(tt.input())
			tt.check(g, pod, err)
		})
	}
	t.Run("Without Docker, an image output is no privilege and needs none.", func(t *testing.T) {
		g := NewWithT(t)
		noDind := builder(func(b *Builder) { b.DindImage = "" })
		in := podInput()
		in.PodSecurity = podsecurity.Baseline
		pod, _, err := noDind.StagePod(in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.InitContainers).NotTo(ContainElement(HaveField("Name", dindName)))
	})
}
