package gc

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// PodConfig says how GC Pods are made; see exec.Config's GC fields.
type PodConfig struct {
	Image       string
	Labels      map[string]string
	Annotations map[string]string
	Resources   corev1.ResourceRequirements
}

// Pod is the GC Pod of run, in namespace, for a tenant at Pod Security
// level. It needs no API token: it only removes files.
func (c PodConfig) Pod(run *cyclonev1alpha1.WorkflowRun, namespace, pvc, level string) *corev1.Pod {
	level = podbuild.SecurityLevel(level)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        convention.GCPodName(run.Name),
			Namespace:   namespace,
			Labels:      map[string]string{},
			Annotations: map[string]string{convention.AnnotationRun: run.Namespace + "/" + run.Name},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name:  "gc",
				Image: c.Image,
				// The run name is a DNS subdomain: it cannot climb out of
				// the workspace.
				Command:         []string{"rm", "-rf", convention.HelperWorkspace + "/" + run.Name},
				VolumeMounts:    []corev1.VolumeMount{{Name: podbuild.DataVolume, MountPath: convention.HelperWorkspace}},
				Resources:       *c.Resources.DeepCopy(),
				SecurityContext: securityContext(level),
			}},
			Volumes: []corev1.Volume{podbuild.DataVolumeSource(pvc)},
		},
	}
	if level == podsecurity.Restricted {
		// Files the restricted workloads wrote belong to their users,
		// in the stage Pods' fsGroup but not always writable by it. A
		// non-root GC Pod can delete them only once the kubelet has
		// made the volume the group's, which an fsGroup with the
		// Always policy does on every mount.
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{
			FSGroup:             ptr.To[int64](podbuild.HelperUID),
			FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeAlways),
		}
	}
	maps.Copy(pod.Labels, c.Labels)
	maps.Copy(pod.Annotations, c.Annotations)
	maps.Copy(pod.Labels, podbuild.OwnLabels(run, convention.PodKindGC))
	return pod
}

// securityContext is the GC Pod's container's. Under a restricted tenant
// every workload ran as non-root, so the GC Pod does too. Under baseline
// and privileged a workload may have run as root and left files only root
// may delete, so the GC Pod runs as root there, still without privilege
// escalation and with the runtime's seccomp profile, which baseline
// allows.
func securityContext(level string) *corev1.SecurityContext {
	if level == podsecurity.Restricted {
		return podbuild.HelperSecurityContext()
	}
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}
