package podbuild

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/template"
	"github.com/gyreops/gyre/internal/convention"
)

// workloadSidecarPrefix marks a Stage's own sidecar containers, as in
// Cyclone.
const workloadSidecarPrefix = "wsc-"

// workload starts the Pod from the Stage's workload, its arguments
// filled in: its containers and sidecars, who it runs as, the pull
// secrets and default resources it gets, and the two volumes every stage
// Pod has.
func (p *pod) workload() error {
	run, stage := p.in.Run, p.in.Stage
	if stage.Spec.Pod == nil {
		return Invalid("stage %s has no pod workload (spec.pod)", stage.Name)
	}
	p.vars = template.VariableMap(run.Status.GlobalVariables)
	args, err := template.Arguments(stage.Spec.Pod.Inputs.Arguments, run.Spec.StageParams, stage.Name, p.vars, template.AttemptSeed(run, stage.Name, p.in.Attempt),
		func(values map[string]string) error {
			return template.ResolveSecretRefs(values, run.Namespace, p.in.Secrets, p.stash.hide)
		})
	if err != nil {
		return Invalid("stage %s: argument %v", stage.Name, err)
	}
	// As in Cyclone, the arguments fill every string of the workload:
	// containers, artifact and resource paths, annotations.
	if p.wl, err = template.Workload(stage.Spec.Pod, args); err != nil {
		return Invalid("stage %s: %v", stage.Name, err)
	}

	spec := p.wl.Spec.DeepCopy()
	// Containers named "wsc-..." are the workload's sidecars in Cyclone, a
	// database for the tests, say: the stage ends when the workload does,
	// not when they do. They run as native sidecars, which the kubelet
	// stops once the other containers have ended.
	var sidecars []corev1.Container
	spec.Containers = slices.DeleteFunc(spec.Containers, func(ctr corev1.Container) bool {
		if strings.HasPrefix(ctr.Name, workloadSidecarPrefix) {
			ctr.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
			sidecars = append(sidecars, ctr)
			return true
		}
		return false
	})
	if len(spec.Containers) == 0 {
		return Invalid("stage %s has no containers", stage.Name)
	}
	spec.RestartPolicy = corev1.RestartPolicyNever
	switch {
	case run.Spec.ServiceAccount != "":
		spec.ServiceAccountName = run.Spec.ServiceAccount
	case spec.ServiceAccountName == "":
		spec.ServiceAccountName = p.b.ServiceAccount
	}
	// A Stage's own pull secrets replace the Project's rather than add to
	// them, so a stage can opt out of a registry credential.
	if len(spec.ImagePullSecrets) == 0 && p.in.Project != nil {
		spec.ImagePullSecrets = slices.Clone(p.in.Project.Spec.ImagePullSecrets)
	}
	if p.defaults, err = defaultResources(p.in.Workflow, p.in.Project); err != nil {
		return err
	}
	for _, list := range [][]corev1.Container{spec.Containers, sidecars, spec.InitContainers} {
		for i := range list {
			fillResources(&list[i].Resources, p.defaults)
		}
	}
	spec.InitContainers = append(spec.InitContainers, sidecars...)
	p.userInit = len(spec.InitContainers)
	spec.Volumes = append(spec.Volumes, DataVolumeSource(p.in.PVC),
		corev1.Volume{Name: coordinatorVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	p.spec = *spec
	p.name = convention.PodName(run.Name, stage.Name, p.in.Attempt)
	p.workloadNames = make([]string, 0, len(spec.Containers))
	for _, ctr := range spec.Containers {
		p.workloadNames = append(p.workloadNames, ctr.Name)
	}
	p.env = helperEnv(run, stage.Name)
	return nil
}

// mountWorkload gives every workload container what the other parts
// mount for it, its own results directory, and Cyclone's variables that
// name the run and the stage; a workload's own variable of the same name
// wins.
func (p *pod) mountWorkload() error {
	for i, n := range p.workloadNames {
		ctr := &p.spec.Containers[i]
		ctr.VolumeMounts = append(ctr.VolumeMounts, p.mounts...)
		ctr.VolumeMounts = append(ctr.VolumeMounts, resultsMount(n))
		for _, e := range runEnv(p.in.Run, p.in.Stage.Name) {
			if !slices.ContainsFunc(ctr.Env, func(o corev1.EnvVar) bool { return o.Name == e.Name }) {
				ctr.Env = append(ctr.Env, e)
			}
		}
	}
	return nil
}

// sizeHelpers names, at zero, every resource the stage's defaults name
// in each of gyre's containers, as Cyclone's helpers do: a ResourceQuota
// that counts CPU or memory admits a Pod only when every container names
// what it needs, and the helpers need next to nothing; the tenant's quota
// is for its work.
func (p *pod) sizeHelpers() error {
	helper := zeroResources(p.defaults)
	for i := p.userInit; i < len(p.spec.InitContainers); i++ {
		fillResources(&p.spec.InitContainers[i].Resources, helper)
	}
	for i := len(p.workloadNames); i < len(p.spec.Containers); i++ {
		fillResources(&p.spec.Containers[i].Resources, helper)
	}
	return nil
}

// helperEnv is the environment of the engine's own containers.
func helperEnv(run *cyclonev1alpha1.WorkflowRun, stage string) []corev1.EnvVar {
	return append(runEnv(run, stage), corev1.EnvVar{Name: convention.EnvWorkdir, Value: convention.HelperWorkspace})
}

// runEnv names the run and the stage to a container, with Cyclone's
// variables.
func runEnv(run *cyclonev1alpha1.WorkflowRun, stage string) []corev1.EnvVar {
	workflow := ""
	if run.Spec.WorkflowRef != nil {
		workflow = run.Spec.WorkflowRef.Name
	}
	return []corev1.EnvVar{
		{Name: convention.EnvRunName, Value: run.Name},
		{Name: convention.EnvStageName, Value: stage},
		{Name: convention.EnvRunNamespace, Value: run.Namespace},
		{Name: convention.EnvWorkflowName, Value: workflow},
	}
}

// defaultResources are the requests and limits a workload container gets
// where it sets none: the Workflow's, else the Project quota's.
func defaultResources(wf *cyclonev1alpha1.Workflow, project *cyclonev1alpha1.Project) (corev1.ResourceRequirements, error) {
	out := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if project != nil {
		for key, value := range project.Spec.Quota {
			kind, name, ok := strings.Cut(string(key), ".")
			if !ok || (kind != "requests" && kind != "limits") {
				continue
			}
			q, err := resource.ParseQuantity(value)
			if err != nil {
				return out, Invalid("project %s: quota %s: %v", project.Name, key, err)
			}
			if kind == "requests" {
				out.Requests[corev1.ResourceName(name)] = q
			} else {
				out.Limits[corev1.ResourceName(name)] = q
			}
		}
	}
	if wf.Spec.Resources != nil {
		maps.Copy(out.Requests, wf.Spec.Resources.Requests)
		maps.Copy(out.Limits, wf.Spec.Resources.Limits)
	}
	return out, nil
}

// zeroResources names every resource of r at zero.
func zeroResources(r corev1.ResourceRequirements) corev1.ResourceRequirements {
	zero := func(l corev1.ResourceList) corev1.ResourceList {
		out := make(corev1.ResourceList, len(l))
		for name := range l {
			out[name] = resource.Quantity{}
		}
		return out
	}
	return corev1.ResourceRequirements{Requests: zero(r.Requests), Limits: zero(r.Limits)}
}

func fillResources(r *corev1.ResourceRequirements, defaults corev1.ResourceRequirements) {
	fill := func(dst *corev1.ResourceList, src corev1.ResourceList) {
		for name, q := range src {
			if _, ok := (*dst)[name]; ok {
				continue
			}
			if *dst == nil {
				*dst = corev1.ResourceList{}
			}
			(*dst)[name] = q.DeepCopy()
		}
	}
	fill(&r.Requests, defaults.Requests)
	fill(&r.Limits, defaults.Limits)
}
