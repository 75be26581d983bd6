package exec

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// Names inside a stage Pod.
const (
	// dataVolume is the tenant PVC (or an emptyDir); a run keeps all its
	// scratch data under "<run>/" in it, which is what GC removes.
	dataVolume = "gyre-data"
	// notifyVolume is shared by the coordinator and the output resolvers:
	// the coordinator writes "ok" there once the workload has finished.
	notifyVolume = "gyre-notify"
	// coordinatorName is Cyclone's name of the coordinator sidecar.
	coordinatorName = "csc-co"
	// workspace is where resolvers and the coordinator see the data volume.
	workspace = "/workspace"
)

// stagePodInput is everything a stage Pod is built from.
type stagePodInput struct {
	Run       *cyclonev1alpha1.WorkflowRun
	Workflow  *cyclonev1alpha1.Workflow
	Item      cyclonev1alpha1.StageItem
	Stage     *cyclonev1alpha1.Stage
	Resources map[string]*cyclonev1alpha1.Resource
	// Project is nil when the run belongs to no Project.
	Project   *cyclonev1alpha1.Project
	Namespace string
	// PVC is empty when stages get an emptyDir.
	PVC     string
	Attempt int32
}

// invalidStageError says a stage cannot be turned into a Pod until its
// spec changes; retrying does not help.
type invalidStageError struct{ msg string }

func (e *invalidStageError) Error() string { return e.msg }

func invalidStage(format string, args ...any) error {
	return &invalidStageError{msg: fmt.Sprintf(format, args...)}
}

// stagePod builds the Pod of one stage attempt. It is deterministic: the
// same input gives the same Pod, which lets a restarted engine recreate a
// Pod it had recorded but not yet created.
func (c Config) stagePod(in stagePodInput) (*corev1.Pod, error) {
	run, stage := in.Run, in.Stage
	if stage.Spec.Pod == nil {
		return nil, invalidStage("stage %s has no pod workload; delegation stages are not supported yet", stage.Name)
	}
	wl := stage.Spec.Pod
	vars := variableMap(run.Status.GlobalVariables)
	args := stageArguments(wl.Inputs.Arguments, run.Spec.StageParams, stage.Name, vars)

	spec := *wl.Spec.DeepCopy()
	if len(spec.Containers) == 0 {
		return nil, invalidStage("stage %s has no containers", stage.Name)
	}
	spec.RestartPolicy = corev1.RestartPolicyNever
	if run.Spec.ServiceAccount != "" {
		spec.ServiceAccountName = run.Spec.ServiceAccount
	}
	// A Stage's own pull secrets replace the Project's rather than add to
	// them, so a stage can opt out of a registry credential.
	if len(spec.ImagePullSecrets) == 0 && in.Project != nil {
		spec.ImagePullSecrets = slices.Clone(in.Project.Spec.ImagePullSecrets)
	}
	defaults, err := defaultResources(in.Workflow, in.Project)
	if err != nil {
		return nil, err
	}
	for i := range spec.Containers {
		ctr := &spec.Containers[i]
		substituteContainer(ctr, args)
		fillResources(&ctr.Resources, defaults)
	}
	for i := range spec.InitContainers {
		substituteContainer(&spec.InitContainers[i], args)
	}
	spec.Volumes = append(spec.Volumes, dataVolumeSource(in.PVC),
		corev1.Volume{Name: notifyVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})

	workloadNames := make([]string, 0, len(spec.Containers))
	for _, ctr := range spec.Containers {
		workloadNames = append(workloadNames, ctr.Name)
	}
	var workloadMounts []corev1.VolumeMount
	env := c.helperEnv(run, stage.Name)

	// Input resources: an init container pulls each into the run's data,
	// where the workload sees it at the resource's path.
	for _, item := range wl.Inputs.Resources {
		res, params, err := resourceParams(in, item, vars)
		if err != nil {
			return nil, err
		}
		sub := path.Join(run.Name, "resources", item.Name)
		spec.InitContainers = append(spec.InitContainers, corev1.Container{
			Name:         shortName("i-" + item.Name),
			Image:        c.resourceResolver(res),
			Args:         []string{"pull"},
			Env:          append(slices.Clone(env), params...),
			VolumeMounts: []corev1.VolumeMount{{Name: dataVolume, MountPath: workspace + "/data", SubPath: sub}},
		})
		workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume, MountPath: mountPath(item.Path, item.Name), SubPath: sub})
	}
	// Artifacts live under "<run>/artifacts/<stage>/<artifact>": a stage
	// writes its outputs there and later stages mount them read-only.
	for _, a := range wl.Outputs.Artifacts {
		workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume,
			MountPath: mountPath(a.Path, a.Name), SubPath: path.Join(run.Name, "artifacts", stage.Name, a.Name)})
	}
	for _, a := range wl.Inputs.Artifacts {
		source := artifactSource(in.Item.Artifacts, a)
		from, name, ok := strings.Cut(source, "/")
		if !ok {
			return nil, invalidStage("stage %s: input artifact %s has no source \"<stage>/<artifact>\" in the workflow", stage.Name, a.Name)
		}
		workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume, ReadOnly: true,
			MountPath: mountPath(a.Path, a.Name), SubPath: path.Join(run.Name, "artifacts", from, name)})
	}
	// Output resources: a sidecar resolver pushes each once the
	// coordinator says the workload is done.
	var outputNames []string
	for _, item := range wl.Outputs.Resources {
		res, params, err := resourceParams(in, item, vars)
		if err != nil {
			return nil, err
		}
		sub := path.Join(run.Name, "outputs", stage.Name, item.Name)
		outputNames = append(outputNames, item.Name)
		spec.Containers = append(spec.Containers, corev1.Container{
			Name:  shortName("o-" + item.Name),
			Image: c.resourceResolver(res),
			Args:  []string{"push"},
			Env:   append(slices.Clone(env), params...),
			VolumeMounts: []corev1.VolumeMount{
				{Name: dataVolume, MountPath: workspace + "/data", SubPath: sub},
				{Name: notifyVolume, MountPath: workspace + "/notify"},
			},
		})
		workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume, MountPath: mountPath(item.Path, item.Name), SubPath: sub})
	}
	for i := range workloadNames {
		spec.Containers[i].VolumeMounts = append(spec.Containers[i].VolumeMounts, workloadMounts...)
	}
	spec.Containers = append(spec.Containers, corev1.Container{
		Name:  coordinatorName,
		Image: c.CoordinatorImage,
		Args:  []string{"coordinator"},
		Env: append(slices.Clone(env),
			corev1.EnvVar{Name: "WORKLOAD_CONTAINERS", Value: strings.Join(workloadNames, ",")},
			corev1.EnvVar{Name: "OUTPUT_RESOURCES", Value: strings.Join(outputNames, ",")},
			corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		),
		VolumeMounts: []corev1.VolumeMount{
			{Name: dataVolume, MountPath: workspace + "/data", SubPath: run.Name},
			{Name: notifyVolume, MountPath: workspace + "/notify"},
		},
	})
	if err := addPresetVolumes(&spec, run.Spec.PresetVolumes, len(workloadNames)); err != nil {
		return nil, err
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        podName(run.Name, stage.Name, in.Attempt),
			Namespace:   in.Namespace,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		},
		Spec: spec,
	}
	if wl.Meta != nil {
		maps.Copy(pod.Labels, wl.Meta.Labels)
		maps.Copy(pod.Annotations, wl.Meta.Annotations)
	}
	maps.Copy(pod.Labels, ownLabels(run, podKindWorkload))
	maps.Copy(pod.Annotations, map[string]string{
		AnnotationRun:     run.Namespace + "/" + run.Name,
		AnnotationStage:   stage.Name,
		AnnotationAttempt: strconv.Itoa(int(in.Attempt)),
	})
	return pod, nil
}

// ownLabels are the labels by which the engine finds a run's Pods.
func ownLabels(run *cyclonev1alpha1.WorkflowRun, kind string) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedByExec,
		LabelRunUID:    string(run.UID),
		LabelPodKind:   kind,
	}
}

// helperEnv is the environment of the engine's own containers.
func (c Config) helperEnv(run *cyclonev1alpha1.WorkflowRun, stage string) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "WORKFLOWRUN_NAME", Value: run.Name},
		{Name: "STAGE_NAME", Value: stage},
		{Name: "METADATA_NAMESPACE", Value: run.Namespace},
	}
}

func (c Config) resourceResolver(res *cyclonev1alpha1.Resource) string {
	if res.Spec.Resolver != "" {
		return res.Spec.Resolver
	}
	return c.resolverImage(res.Spec.Type)
}

// resourceParams finds the Resource of a stage's resource item and returns
// its parameters as environment variables: the Resource's own, overridden
// by the run's.
func resourceParams(in stagePodInput, item cyclonev1alpha1.ResourceItem, vars map[string]string) (*cyclonev1alpha1.Resource, []corev1.EnvVar, error) {
	res := in.Resources[item.Name]
	if res == nil {
		return nil, nil, invalidStage("stage %s: resource %s not found", in.Stage.Name, item.Name)
	}
	var override []cyclonev1alpha1.ParameterItem
	for _, p := range in.Run.Spec.ResourceParams {
		if p.Name == item.Name {
			override = p.Parameters
		}
	}
	names, values := parameterValues(vars, res.Spec.Parameters, override)
	env := make([]corev1.EnvVar, 0, len(names)+1)
	env = append(env, corev1.EnvVar{Name: "RESOURCE_NAME", Value: item.Name})
	for _, n := range names {
		env = append(env, corev1.EnvVar{Name: n, Value: values[n]})
	}
	return res, env, nil
}

// stageArguments are a stage's argument values: its defaults, overridden
// by the run's stage parameters, with variables substituted.
func stageArguments(defaults []cyclonev1alpha1.ArgumentValue, runParams []cyclonev1alpha1.ParameterConfig, stage string, vars map[string]string) map[string]string {
	base := make([]cyclonev1alpha1.ParameterItem, len(defaults))
	for i, a := range defaults {
		base[i] = cyclonev1alpha1.ParameterItem(a)
	}
	var override []cyclonev1alpha1.ParameterItem
	for _, p := range runParams {
		if p.Name == stage {
			override = p.Parameters
		}
	}
	_, values := parameterValues(vars, base, override)
	return values
}

// substituteContainer fills "{{ argument }}" placeholders of a container.
func substituteContainer(ctr *corev1.Container, args map[string]string) {
	ctr.Image = substituteArguments(ctr.Image, args)
	ctr.WorkingDir = substituteArguments(ctr.WorkingDir, args)
	for i := range ctr.Command {
		ctr.Command[i] = substituteArguments(ctr.Command[i], args)
	}
	for i := range ctr.Args {
		ctr.Args[i] = substituteArguments(ctr.Args[i], args)
	}
	for i := range ctr.Env {
		ctr.Env[i].Value = substituteArguments(ctr.Env[i].Value, args)
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
				return out, invalidStage("project %s: quota %s: %v", project.Name, key, err)
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

func dataVolumeSource(pvc string) corev1.Volume {
	if pvc == "" {
		return corev1.Volume{Name: dataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	return corev1.Volume{Name: dataVolume, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc}}}
}

func mountPath(p, name string) string {
	if p != "" {
		return p
	}
	return path.Join(workspace, name)
}

func artifactSource(bound []cyclonev1alpha1.ArtifactItem, a cyclonev1alpha1.ArtifactItem) string {
	for _, b := range bound {
		if b.Name == a.Name && b.Source != "" {
			return b.Source
		}
	}
	return a.Source
}

// addPresetVolumes mounts a run's preset volumes into the containers of
// their group; the first nWorkload containers are the workload.
func addPresetVolumes(spec *corev1.PodSpec, presets []cyclonev1alpha1.PresetVolume, nWorkload int) error {
	for i, pv := range presets {
		name := fmt.Sprintf("gyre-preset-%d", i)
		vol := corev1.Volume{Name: name}
		obj := ""
		if pv.ObjectName != nil {
			obj = *pv.ObjectName
		}
		switch pv.Type {
		case cyclonev1alpha1.PresetVolumeTypeHostPath:
			vol.HostPath = &corev1.HostPathVolumeSource{Path: pv.Path}
		case cyclonev1alpha1.PresetVolumeTypePVC:
			vol.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: obj}
		case cyclonev1alpha1.PresetVolumeTypeSecret:
			vol.Secret = &corev1.SecretVolumeSource{SecretName: obj}
		case cyclonev1alpha1.PresetVolumeTypeConfigMap:
			vol.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: obj}}
		default:
			return invalidStage("preset volume %d has unknown type %q", i, pv.Type)
		}
		spec.Volumes = append(spec.Volumes, vol)
		mount := corev1.VolumeMount{Name: name, MountPath: pv.MountPath, SubPath: pv.SubPath}
		if pv.Type == cyclonev1alpha1.PresetVolumeTypeSecret || pv.Type == cyclonev1alpha1.PresetVolumeTypeConfigMap {
			mount.SubPath = pv.Path
		}
		for j := range spec.Containers {
			workload := j < nWorkload
			if pv.ContainerGroup == cyclonev1alpha1.ContainerGroupAll || pv.ContainerGroup == "" ||
				(pv.ContainerGroup == cyclonev1alpha1.ContainerGroupWorkload) == workload {
				spec.Containers[j].VolumeMounts = append(spec.Containers[j].VolumeMounts, mount)
			}
		}
	}
	return nil
}
