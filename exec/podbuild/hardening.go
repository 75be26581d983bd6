package podbuild

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/gyreops/gyre/internal/podsecurity"
)

// HelperUID is the user gyre's helper containers run as: the "nonroot"
// user of distroless images, which gyre's own image has too.
const HelperUID = 65532

// HelperSecurityContext is the security context of every container gyre
// adds to a stage Pod: it passes the restricted Pod Security Standard, so
// that gyre's helpers never make a Pod need more than its workload does.
func HelperSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To[int64](HelperUID),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// SecurityLevel is a Tenant's Pod Security level, or the default when it
// names none.
func SecurityLevel(level string) string {
	if level == "" {
		return podsecurity.DefaultLevel
	}
	return level
}

// harden gives the stage Pod what least privilege asks of gyre: no API
// token for the workload unless its Stage asks for one (a stage Pod talks
// to no API server, and a pull-request build must not get the worker
// ServiceAccount's rights), and the restricted security context on every
// container gyre added, but for the Docker daemon and the resolvers that
// talk to it, whose socket belongs to root.
//
// The data and coordinator volumes are shared by the workload, which may
// run as any user, and the helpers, which run as HelperUID: fsGroup makes
// the kubelet give both volumes to one group the helpers are in, unless
// the Stage chose its own group.
func (p *pod) harden() error {
	spec := &p.spec
	// Container names are unique across a Pod's init and regular
	// containers; preset volumes add none.
	own := map[string]bool{}
	for _, ctr := range slices.Concat(spec.InitContainers[p.userInit:], spec.Containers[len(p.workloadNames):]) {
		own[ctr.Name] = ctr.Name != dindName && !p.dockerUsers[ctr.Name]
	}
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
			if own[list[i].Name] {
				list[i].SecurityContext = HelperSecurityContext()
			}
		}
	}
	return nil
}
