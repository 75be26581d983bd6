package podsecurity

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestCheck(t *testing.T) {
	plain := corev1.PodSpec{Containers: []corev1.Container{{Name: "build", Image: "golang"}}}
	privileged := corev1.PodSpec{HostPID: true, Containers: []corev1.Container{{Name: "root", Image: "busybox",
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}},
		Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}}
	hardened := corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{Name: "build", Image: "golang", SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
	}
	for _, tc := range []struct {
		name  string
		level string
		spec  corev1.PodSpec
		rules []string
	}{
		{"A plain container passes baseline.", Baseline, plain, nil},
		{"A plain container breaks four rules of restricted.", Restricted, plain,
			[]string{"allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"}},
		{"A hardened container passes restricted.", Restricted, hardened, nil},
		{"Host namespaces, privileged and hostPath break baseline.", Baseline, privileged,
			[]string{"host namespaces", "hostPath volumes", "privileged"}},
		{"Privileged allows everything.", Privileged, privileged, nil},
		{"An unknown level is checked as restricted.", "lax", plain,
			[]string{"allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var rules []string
			for _, v := range Check(tc.level, nil, &tc.spec) {
				rules = append(rules, v.Rule)
			}
			g.Expect(rules).To(Equal(tc.rules))
		})
	}
}

func TestError(t *testing.T) {
	g := NewWithT(t)
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "root", Image: "busybox",
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}
	g.Expect(Error(Baseline, Check(Baseline, nil, &spec))).To(Equal(
		`violates PodSecurity "baseline": privileged (container "root" must not set securityContext.privileged=true)`))
}

func TestParseLevelAndAllows(t *testing.T) {
	g := NewWithT(t)
	l, err := ParseLevel("")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(l).To(Equal(Baseline))
	_, err = ParseLevel("root")
	g.Expect(err).To(MatchError(ContainSubstring(`"root": must be restricted, baseline or privileged`)))
	g.Expect(Allows(Privileged, Baseline)).To(BeTrue())
	g.Expect(Allows(Baseline, Privileged)).To(BeFalse())
	g.Expect(Allows(Restricted, Restricted)).To(BeTrue())
}
