package exec

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/gyreops/gyre/internal/podsecurity"
)

// HelperUID is the user gyre's helper containers run as: the "nonroot"
// user of distroless images, which gyre's own image has too.
const HelperUID = 65532

// helperSecurityContext is the security context of every container gyre
// adds to a stage Pod: it passes the restricted Pod Security Standard, so
// that gyre's helpers never make a Pod need more than its workload does.
func helperSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To[int64](HelperUID),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// gcSecurityContext is the GC Pod's container's. Under a restricted
// tenant every workload ran as non-root, so the GC Pod does too. Under
// baseline and privileged a workload may have run as root and left files
// only root may delete, so the GC Pod runs as root there, still without
// privilege escalation and with the runtime's seccomp profile, which
// baseline allows.
func gcSecurityContext(level string) *corev1.SecurityContext {
	if level == podsecurity.Restricted {
		return helperSecurityContext()
	}
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// podSecurityLevel is level, or the default when it is empty.
func podSecurityLevel(level string) string {
	if level == "" {
		return podsecurity.DefaultLevel
	}
	return level
}

// hardenStagePod gives a stage Pod what least privilege asks of gyre: no
// API token for the workload unless its Stage asks for one (a stage Pod
// talks to no API server, and a pull-request build must not get the
// worker ServiceAccount's rights), and the restricted security context on
// every helper container. helpers says which containers are gyre's.
//
// The data and coordinator volumes are shared by the workload, which may
// run as any user, and the helpers, which run as HelperUID: fsGroup makes
// the kubelet give both volumes to one group the helpers are in, unless
// the Stage chose its own group.
func hardenStagePod(spec *corev1.PodSpec, helpers func(*corev1.Container) bool) {
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		spec.AutomountServiceAccountToken = ptr.To(false)
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.SecurityContext.FSGroup == nil {
		spec.SecurityContext.FSGroup = ptr.To[int64](HelperUID)
		spec.SecurityContext.FSGroupChangePolicy = ptr.To(corev1.FSGroupChangeOnRootMismatch)
	}
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if helpers(&list[i]) {
				list[i].SecurityContext = helperSecurityContext()
			}
		}
	}
}
