package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/internal/scheduling"
)

// stagePolicy checks a Stage's Pod workload against the target's Pod
// Security level, with the upstream checks, the ones the worker
// namespace's admission runs, and against its Tenant's scheduling, so
// that a stage the API server or the engine would refuse at run time is
// refused in review instead. The workload's own sidecars
// ("wsc-…") and init containers are part of spec.pod.spec and are
// checked with it; gyre's helpers are the engine's to check.
func (c *checker) stagePolicy(i int, s *cyclonev1alpha1.Stage) {
	if s.Spec.Pod == nil {
		return
	}
	level := c.target.level()
	meta := &metav1.ObjectMeta{}
	if m := s.Spec.Pod.Meta; m != nil {
		meta.Labels, meta.Annotations = m.Labels, m.Annotations
	}
	if vs := podsecurity.Check(level, meta, &s.Spec.Pod.Spec); len(vs) > 0 {
		c.fail(i, "spec.pod.spec", "%s", podsecurity.Error(level, vs))
	}
	for _, v := range scheduling.Check(c.target.Scheduling, &s.Spec.Pod.Spec) {
		c.fail(i, "spec.pod.spec."+v.Field, "%s", v.Message)
	}
	c.serviceAccount(i, "spec.pod.spec.serviceAccountName", s.Spec.Pod.Spec.ServiceAccountName, s)
	c.serviceAccount(i, "spec.pod.spec.serviceAccount", s.Spec.Pod.Spec.DeprecatedServiceAccount, s)
	if level == podsecurity.Privileged {
		return
	}
	for k, item := range s.Spec.Pod.Outputs.Resources {
		typ := item.Type
		if t, ok := c.idx.resourceTypes[item.Name]; ok && item.Name != "" {
			typ = t
		}
		if typ != cyclonev1alpha1.ImageResourceType {
			continue
		}
		name := item.Name
		if name == "" {
			name = "of type " + typ
		}
		// A warning, not an error: the YAML asks for nothing privileged,
		// the Tenant's level is what refuses the Docker daemon.
		c.warn(i, fmt.Sprintf("spec.pod.outputs.resources[%d]", k),
			"stage %s outputs image resource %s: it needs a privileged Docker daemon, which tenants below podSecurity: privileged do not get; the run will fail",
			s.Name, name)
	}
}

// presetVolumes checks a run's preset volumes against the target's level
// by mounting them in a Pod of their own, named as the engine names them,
// so that the rule and its wording are upstream's: a HostPath volume
// breaks baseline.
func (c *checker) presetVolumes(i int, spec *cyclonev1alpha1.WorkflowRunSpec) {
	if len(spec.PresetVolumes) == 0 {
		return
	}
	pod := &corev1.PodSpec{}
	for k, pv := range spec.PresetVolumes {
		vol, ok := pv.Volume(fmt.Sprintf("gyre-preset-%d", k))
		if !ok {
			continue // the schema's enum reports it
		}
		pod.Volumes = append(pod.Volumes, vol)
	}
	level := c.target.level()
	if vs := podsecurity.Check(level, nil, pod); len(vs) > 0 {
		c.fail(i, "spec.volumes", "%s", podsecurity.Error(level, vs))
	}
}
