package exec

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// Names inside a stage Pod.
const (
	// dataVolume is the tenant PVC (or an emptyDir); a run keeps all its
	// scratch data under "<run>/" in it, which is what GC removes.
	dataVolume = "gyre-data"
	// coordinatorVolume is an emptyDir shared by the coordinator with the
	// other containers: workload and input containers write their result
	// files under "results/<container>/", and the coordinator tells output
	// resolvers under "notify/" that the workload has finished.
	coordinatorVolume = "gyre-coordinator"
	// coordinatorName is Cyclone's name of the coordinator sidecar.
	coordinatorName = "csc-co"
	// podInfoVolume gives the coordinator the stage Pod's annotations.
	podInfoVolume = "gyre-podinfo"
	// toolsName is the init container that installs the gyre binary
	// into toolsVolume, for the workload to run "gyre collect" from.
	toolsName   = "csc-tools"
	toolsVolume = "gyre-tools"
	// sharedOutputs is the directory, under a stage's outputs, of its
	// output resources that name no path.
	sharedOutputs = "_cyclone"
	// workloadSidecarPrefix marks a Stage's own sidecar containers, as in
	// Cyclone.
	workloadSidecarPrefix = "wsc-"
	// dindName is Cyclone's name of the Docker daemon sidecar of stages
	// that output images.
	dindName = "csc-dind"
	// dockerSockVolume holds the Docker daemon's socket, which the
	// workload and the image resolvers reach at dockerSockDir, Cyclone's
	// "/var/run"; dockerDataVolume holds the daemon's images and layers.
	dockerSockVolume = "gyre-docker-sock"
	dockerDataVolume = "gyre-docker-data"
	dockerSockDir    = "/var/run"
	// workspace is where the GC Pod sees the data volume, and the default
	// parent of a workload's mount paths.
	workspace = HelperWorkspace
)

// The contract between a stage Pod and the helper programs it runs; its
// home is internal/convention.
const (
	HelperWorkspace        = convention.HelperWorkspace
	CoordinatorDataPath    = convention.CoordinatorDataPath
	CoordinatorVolumePath  = convention.CoordinatorVolumePath
	ToolsBinary            = convention.ToolsBinary
	StagingMountPath       = convention.StagingMountPath
	OutputResourcesDir     = convention.OutputResourcesDir
	ResultsDir             = convention.ResultsDir
	ResultFile             = convention.ResultFile
	WorkloadExitAnnotation = convention.WorkloadExitAnnotation
	CoordinatorPodInfoPath = convention.CoordinatorPodInfoPath
	PodInfoAnnotations     = convention.PodInfoAnnotations
	TerminationLog         = convention.TerminationLog
	MaxTerminationMessage  = convention.MaxTerminationMessage
	NotifyOK               = convention.NotifyOK
	NotifyFailed           = convention.NotifyFailed
	EnvRunName             = convention.EnvRunName
	EnvStageName           = convention.EnvStageName
	EnvRunNamespace        = convention.EnvRunNamespace
	EnvWorkflowName        = convention.EnvWorkflowName
	EnvPodName             = convention.EnvPodName
	EnvWorkloadContainers  = convention.EnvWorkloadContainers
	EnvOutputResources     = convention.EnvOutputResources
	EnvOutputArtifacts     = convention.EnvOutputArtifacts
	EnvResourceName        = convention.EnvResourceName
	EnvWorkdir             = convention.EnvWorkdir
	EnvPullPolicy          = convention.EnvPullPolicy
)

// StagingDir is convention.StagingDir.
func StagingDir(pod string) string { return convention.StagingDir(pod) }

// ArtifactDir is convention.ArtifactDir.
func ArtifactDir(stage, artifact string) string { return convention.ArtifactDir(stage, artifact) }

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
	// ArtifactPaths gives the path of every output artifact the stage's
	// input artifacts come from, by "<stage>/<artifact>": an input mounts
	// the file or directory of that name.
	ArtifactPaths map[string]string
	// Secrets are the Secrets of the run's namespace that the stage's
	// arguments and resource parameters refer to, by name.
	Secrets map[string]*corev1.Secret
	// PodSecurity is the Pod Security Standards level of the run's
	// Tenant (internal/podsecurity); empty means the default, baseline.
	PodSecurity string
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
func (c Config) stagePod(in stagePodInput) (*corev1.Pod, *corev1.Secret, error) {
	stash := &secretStash{}
	pod, err := c.buildStagePod(in, stash)
	if err != nil {
		return nil, nil, err
	}
	if err := stash.reveal(pod); err != nil {
		return nil, nil, invalidStage("stage %s: %v", in.Stage.Name, err)
	}
	return pod, stash.runSecret(in.Run, pod), nil
}

// buildStagePod builds the Pod of stagePod with the stand-ins of stash
// where its secret references' values go.
func (c Config) buildStagePod(in stagePodInput, stash *secretStash) (*corev1.Pod, error) {
	run, stage := in.Run, in.Stage
	if stage.Spec.Pod == nil {
		return nil, invalidStage("stage %s has no pod workload (spec.pod)", stage.Name)
	}
	vars := variableMap(run.Status.GlobalVariables)
	args, err := stageArguments(stage.Spec.Pod.Inputs.Arguments, run.Spec.StageParams, stage.Name, vars, argumentSeed(run, stage.Name, in.Attempt),
		func(values map[string]string) error {
			return resolveSecretRefs(values, run.Namespace, in.Secrets, stash)
		})
	if err != nil {
		return nil, invalidStage("stage %s: argument %v", stage.Name, err)
	}
	// As in Cyclone, the arguments fill every string of the workload:
	// containers, artifact and resource paths, annotations.
	wl, err := renderWorkload(stage.Spec.Pod, args)
	if err != nil {
		return nil, invalidStage("stage %s: %v", stage.Name, err)
	}

	spec := *wl.Spec.DeepCopy()
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
		return nil, invalidStage("stage %s has no containers", stage.Name)
	}
	spec.RestartPolicy = corev1.RestartPolicyNever
	switch {
	case run.Spec.ServiceAccount != "":
		spec.ServiceAccountName = run.Spec.ServiceAccount
	case spec.ServiceAccountName == "":
		spec.ServiceAccountName = c.ServiceAccount
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
		fillResources(&spec.Containers[i].Resources, defaults)
	}
	for i := range sidecars {
		fillResources(&sidecars[i].Resources, defaults)
	}
	for i := range spec.InitContainers {
		fillResources(&spec.InitContainers[i].Resources, defaults)
	}
	spec.InitContainers = append(spec.InitContainers, sidecars...)
	userInit := len(spec.InitContainers)
	spec.Volumes = append(spec.Volumes, dataVolumeSource(in.PVC),
		corev1.Volume{Name: coordinatorVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	name := podName(run.Name, stage.Name, in.Attempt)

	workloadNames := make([]string, 0, len(spec.Containers))
	for _, ctr := range spec.Containers {
		workloadNames = append(workloadNames, ctr.Name)
	}
	var workloadMounts []corev1.VolumeMount
	env := c.helperEnv(run, stage.Name)

	// Input resources: an init container pulls each into "data/" of the
	// resource's directory, where the workload sees it at the resource's
	// path. The directory is the run's, or for a persistent resource a
	// path in its own PVC that outlives the run.
	for i, item := range wl.Inputs.Resources {
		res, params, err := resourceParams(in, item, vars, stash)
		if err != nil {
			return nil, err
		}
		volume, sub := dataVolume, path.Join(run.Name, "resources", item.Name)
		if p := res.Spec.Persistent; p != nil && !c.IgnorePersistence {
			if p.PVC == "" {
				return nil, invalidStage("stage %s: resource %s: spec.persistent.pvc is empty", stage.Name, item.Name)
			}
			volume, sub = fmt.Sprintf("gyre-persistent-%d", i), p.Path
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: p.PVC}}})
			// spec.persistent.pullPolicy, else a PULL_POLICY parameter,
			// which Cyclone's own resolvers read, else Always.
			i := slices.IndexFunc(params, func(e corev1.EnvVar) bool { return e.Name == EnvPullPolicy })
			switch {
			case p.PullPolicy != "" && i >= 0:
				params[i].Value = string(p.PullPolicy)
			case p.PullPolicy != "":
				params = append(params, corev1.EnvVar{Name: EnvPullPolicy, Value: string(p.PullPolicy)})
			case i < 0:
				params = append(params, corev1.EnvVar{Name: EnvPullPolicy, Value: string(cyclonev1alpha1.PullAlways)})
			}
		}
		ctrName := shortName("i-" + item.Name)
		spec.InitContainers = append(spec.InitContainers, corev1.Container{
			Name:                     ctrName,
			Image:                    c.resourceResolver(res),
			Args:                     c.resolverArgs(res, "pull"),
			Env:                      append(slices.Clone(env), params...),
			TerminationMessagePolicy: c.resolverMessagePolicy(res),
			VolumeMounts: []corev1.VolumeMount{
				{Name: volume, MountPath: HelperWorkspace, SubPath: sub},
				resultsMount(ctrName),
			},
		})
		workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: volume, MountPath: mountPath(item.Path, item.Name), SubPath: path.Join(sub, "data")})
	}
	// Output artifacts go into the attempt's staging directory, each as
	// "<name>/<base name of its path>": the file or the directory the
	// workload left at its path. The coordinator publishes them to
	// "artifacts/<stage>/" once the workload has succeeded, and later
	// stages mount that file or directory at their input path, read-only,
	// as Cyclone does.
	//
	// Cyclone copies artifacts out of the finished container with the
	// Docker API. Here the first workload container runs its command
	// through "gyre collect", which copies them once the command has
	// succeeded. A container without a command runs its image's
	// entrypoint, which gyre cannot know: it gets a directory of the
	// staging volume at each artifact's path instead, so its artifacts
	// must be directories.
	artifactNames := make([]string, 0, len(wl.Outputs.Artifacts))
	collect := len(wl.Outputs.Artifacts) > 0 && len(spec.Containers[0].Command) > 0
	var collectArgs []string
	for _, a := range wl.Outputs.Artifacts {
		artifactNames = append(artifactNames, a.Name)
		p := mountPath(a.Path, a.Name)
		if collect {
			collectArgs = append(collectArgs, "--artifact="+a.Name+"="+p)
			continue
		}
		workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume,
			MountPath: p, SubPath: path.Join(run.Name, StagingDir(name), a.Name, path.Base(p))})
	}
	if collect {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: toolsVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		spec.InitContainers = append(spec.InitContainers, corev1.Container{
			Name:                     toolsName,
			Image:                    c.CoordinatorImage,
			Args:                     []string{"install-self", ToolsBinary},
			VolumeMounts:             []corev1.VolumeMount{{Name: toolsVolume, MountPath: path.Dir(ToolsBinary)}},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		})
		ctr := &spec.Containers[0]
		ctr.Command = slices.Concat([]string{ToolsBinary, "collect"}, collectArgs, []string{"--"}, ctr.Command)
		ctr.VolumeMounts = append(ctr.VolumeMounts,
			corev1.VolumeMount{Name: toolsVolume, MountPath: path.Dir(ToolsBinary), ReadOnly: true},
			corev1.VolumeMount{Name: dataVolume, MountPath: StagingMountPath, SubPath: path.Join(run.Name, StagingDir(name))})
	}
	for _, a := range wl.Inputs.Artifacts {
		source := artifactSource(in.Item.Artifacts, a)
		from, artifact, ok := strings.Cut(source, "/")
		if !ok {
			return nil, invalidStage("stage %s: input artifact %s has no source \"<stage>/<artifact>\" in the workflow", stage.Name, a.Name)
		}
		produced, ok := in.ArtifactPaths[source]
		if !ok {
			return nil, invalidStage("stage %s: input artifact %s: stage %s has no output artifact %s", stage.Name, a.Name, from, artifact)
		}
		workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume, ReadOnly: true,
			MountPath: mountPath(a.Path, a.Name), SubPath: path.Join(run.Name, ArtifactDir(from, artifact), path.Base(produced))})
	}
	// Output resources: a sidecar resolver pushes each once the
	// coordinator says the workload is done.
	var outputNames []string
	docker := false
	// dockerUsers are the image resolvers that talk to the Docker daemon,
	// whose socket belongs to root.
	dockerUsers := map[string]bool{}
	for _, item := range wl.Outputs.Resources {
		res, params, err := resourceParams(in, item, vars, stash)
		if err != nil {
			return nil, err
		}
		// An output without a path is in Cyclone's one directory of
		// outputs, /cyclone/resources, which its resolvers all see.
		sub := path.Join(run.Name, "outputs", stage.Name, item.Name)
		if item.Path == "" {
			sub = path.Join(run.Name, "outputs", stage.Name, sharedOutputs)
		}
		outputNames = append(outputNames, item.Name)
		ctr := corev1.Container{
			Name:                     shortName("o-" + item.Name),
			Image:                    c.resourceResolver(res),
			Args:                     c.resolverArgs(res, "push"),
			Env:                      append(slices.Clone(env), params...),
			TerminationMessagePolicy: c.resolverMessagePolicy(res),
			VolumeMounts: []corev1.VolumeMount{
				{Name: dataVolume, MountPath: path.Join(HelperWorkspace, "data"), SubPath: sub},
				{Name: coordinatorVolume, MountPath: path.Join(HelperWorkspace, "notify"), SubPath: "notify"},
			},
		}
		if res.Spec.Type == cyclonev1alpha1.ImageResourceType && c.DindImage != "" {
			// Cyclone's image resolver pushes what the workload built
			// with the stage's Docker daemon, which runs privileged: only
			// a Tenant that allows privileged Pods gets one.
			if podSecurityLevel(in.PodSecurity) != podsecurity.Privileged {
				return nil, invalidStage("stage %s outputs image resource %s: it needs a privileged Docker daemon; "+
					"set podSecurity: privileged on Tenant %s to allow it, or build images without Docker (gyre controller --no-dind)",
					stage.Name, item.Name, Tenant(run.Namespace))
			}
			docker = true
			dockerUsers[ctr.Name] = true
			ctr.VolumeMounts = append(ctr.VolumeMounts, dockerSockMount())
		}
		spec.Containers = append(spec.Containers, ctr)
		if item.Path != "" {
			workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume, MountPath: item.Path, SubPath: sub})
		} else if !slices.ContainsFunc(workloadMounts, func(m corev1.VolumeMount) bool { return m.MountPath == OutputResourcesDir }) {
			workloadMounts = append(workloadMounts, corev1.VolumeMount{Name: dataVolume, MountPath: OutputResourcesDir, SubPath: sub})
		}
	}
	if docker {
		workloadMounts = append(workloadMounts, dockerSockMount())
		spec.Volumes = append(spec.Volumes,
			corev1.Volume{Name: dockerSockVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			corev1.Volume{Name: dockerDataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		spec.InitContainers = append(spec.InitContainers, c.dindSidecar())
	}
	for i, n := range workloadNames {
		ctr := &spec.Containers[i]
		ctr.VolumeMounts = append(ctr.VolumeMounts, workloadMounts...)
		ctr.VolumeMounts = append(ctr.VolumeMounts, resultsMount(n))
		// Cyclone names the run and the stage to every container; a
		// workload's own variable of the same name wins.
		for _, e := range runEnv(run, stage.Name) {
			if !slices.ContainsFunc(ctr.Env, func(o corev1.EnvVar) bool { return o.Name == e.Name }) {
				ctr.Env = append(ctr.Env, e)
			}
		}
	}
	spec.Containers = append(spec.Containers, corev1.Container{
		Name:  coordinatorName,
		Image: c.CoordinatorImage,
		Args:  []string{"coordinator"},
		Env: append(slices.Clone(env),
			corev1.EnvVar{Name: EnvWorkloadContainers, Value: strings.Join(workloadNames, ",")},
			corev1.EnvVar{Name: EnvOutputResources, Value: strings.Join(outputNames, ",")},
			corev1.EnvVar{Name: EnvOutputArtifacts, Value: strings.Join(artifactNames, ",")},
			corev1.EnvVar{Name: EnvPodName, Value: name},
		),
		VolumeMounts: []corev1.VolumeMount{
			{Name: dataVolume, MountPath: CoordinatorDataPath, SubPath: run.Name},
			{Name: coordinatorVolume, MountPath: CoordinatorVolumePath},
			{Name: podInfoVolume, MountPath: CoordinatorPodInfoPath, ReadOnly: true},
		},
		TerminationMessagePath:   TerminationLog,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	})
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: podInfoVolume, VolumeSource: corev1.VolumeSource{
		DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
			Path: PodInfoAnnotations, FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}}}}}})
	// A ResourceQuota that counts CPU or memory admits a Pod only when
	// every container names what it needs. The engine's helpers name
	// every resource the stage's defaults name, at zero, as Cyclone's do:
	// they need next to nothing, and the tenant's quota is for its work.
	helper := zeroResources(defaults)
	for i := userInit; i < len(spec.InitContainers); i++ {
		fillResources(&spec.InitContainers[i].Resources, helper)
	}
	for i := len(workloadNames); i < len(spec.Containers); i++ {
		fillResources(&spec.Containers[i].Resources, helper)
	}
	if err := addPresetVolumes(&spec, run.Spec.PresetVolumes, len(workloadNames)); err != nil {
		return nil, err
	}
	// Container names are unique across a Pod's init and regular
	// containers; preset volumes add none.
	own := map[string]bool{}
	for _, ctr := range slices.Concat(spec.InitContainers[userInit:], spec.Containers[len(workloadNames):]) {
		own[ctr.Name] = ctr.Name != dindName && !dockerUsers[ctr.Name]
	}
	hardenStagePod(&spec, func(ctr *corev1.Container) bool { return own[ctr.Name] })

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
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

// dindSidecar is the Docker daemon of a stage that outputs images, as
// Cyclone gives one: the workload builds with it and Cyclone's image
// resolver pushes from it. It is a native sidecar (an init container that
// keeps running), so the kubelet starts the workload only once the daemon
// answers and stops the daemon when the stage's containers are done; the
// Pod then ends as they did.
func (c Config) dindSidecar() corev1.Container {
	args := []string{"dockerd", "--host=unix://" + path.Join(dockerSockDir, "docker.sock")}
	if c.DindBip != "" {
		args = append(args, "--bip="+c.DindBip)
	}
	for _, r := range c.DindInsecureRegistries {
		args = append(args, "--insecure-registry="+r)
	}
	return corev1.Container{
		Name:          dindName,
		Image:         c.DindImage,
		Args:          args,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		// dockerd needs to mount and to set up networks.
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"docker", "info"}}},
			PeriodSeconds:    1,
			FailureThreshold: 120,
		},
		VolumeMounts: []corev1.VolumeMount{
			dockerSockMount(),
			{Name: dockerDataVolume, MountPath: "/var/lib/docker"},
		},
	}
}

func dockerSockMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: dockerSockVolume, MountPath: dockerSockDir}
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
	return append(runEnv(run, stage), corev1.EnvVar{Name: EnvWorkdir, Value: HelperWorkspace})
}

// runEnv names the run and the stage to a container, with Cyclone's
// variables.
func runEnv(run *cyclonev1alpha1.WorkflowRun, stage string) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: EnvRunName, Value: run.Name},
		{Name: EnvStageName, Value: stage},
		{Name: EnvRunNamespace, Value: run.Namespace},
		{Name: EnvWorkflowName, Value: workflowName(run)},
	}
}

// resultsMount gives a container its own directory of the coordinator
// volume at ResultsDir, so that result files of different containers never
// clash and the coordinator finds each under "results/<container>/".
func resultsMount(container string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: coordinatorVolume, MountPath: ResultsDir, SubPath: path.Join("results", container)}
}

// resolverArgs are the arguments of a resolver container. A Resource
// resolved by an image of its own (spec.resolver, or ResolverImages) gets
// Cyclone's single "pull" or "push" argument; gyre's own image, whose
// entrypoint is the gyre binary, is told the type as well.
func (c Config) resolverArgs(res *cyclonev1alpha1.Resource, op string) []string {
	if res.Spec.Resolver != "" || c.ResolverImages[res.Spec.Type] != "" {
		return []string{op}
	}
	return []string{"resolve", res.Spec.Type, op}
}

// resolverMessagePolicy makes the kubelet keep the end of a failed gyre
// resolver's log as its termination message, which the stage's status
// shows: without it a real node reports a bare exit code, and the reason
// (a refused clone, a volume gyre's user may not write) is lost with the
// Pod. gyre's resolvers never log a credential; a resolver image of the
// Resource's own might, so its log stays out of the status.
func (c Config) resolverMessagePolicy(res *cyclonev1alpha1.Resource) corev1.TerminationMessagePolicy {
	if res.Spec.Resolver != "" || c.ResolverImages[res.Spec.Type] != "" {
		return ""
	}
	return corev1.TerminationMessageFallbackToLogsOnError
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
func resourceParams(in stagePodInput, item cyclonev1alpha1.ResourceItem, vars map[string]string, stash *secretStash) (*cyclonev1alpha1.Resource, []corev1.EnvVar, error) {
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
	if err := resolveSecretRefs(values, in.Run.Namespace, in.Secrets, stash); err != nil {
		return nil, nil, invalidStage("stage %s: resource %s: %v", in.Stage.Name, item.Name, err)
	}
	env := make([]corev1.EnvVar, 0, len(names)+1)
	env = append(env, corev1.EnvVar{Name: "RESOURCE_NAME", Value: item.Name})
	for _, n := range names {
		env = append(env, corev1.EnvVar{Name: n, Value: values[n]})
	}
	return res, env, nil
}

// stageArguments are a stage's argument values: its defaults, overridden
// by the run's stage parameters, with variables substituted.
//
// As in Cyclone, an argument may be a generator ("$(random:N)",
// "$(timenow:FORMAT)") and may use the other arguments. A generator draws
// from seed, not from the clock or a random source, so that the same
// attempt always gets the same Pod.
func stageArguments(defaults []cyclonev1alpha1.ArgumentValue, runParams []cyclonev1alpha1.ParameterConfig, stage string, vars map[string]string, seed argumentSource, resolve func(map[string]string) error) (map[string]string, error) {
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
	for k, v := range values {
		values[k] = generate(v, seed.now, seed.random(k))
	}
	if err := resolve(values); err != nil {
		return nil, err
	}
	rendered := make(map[string]string, len(values))
	for k, v := range values {
		rendered[k] = substituteArguments(v, values)
	}
	return rendered, nil
}

// argumentSource is what generated argument values are drawn from.
type argumentSource struct {
	now  time.Time
	key  string
	next func(key string, n int) string
}

func (a argumentSource) random(arg string) func(int) string {
	return func(n int) string { return a.next(a.key+"/"+arg, n) }
}

// argumentSeed draws an attempt's generated arguments from the run's
// creation time and from a hash of the run's UID, the stage, the attempt
// and the argument.
func argumentSeed(run *cyclonev1alpha1.WorkflowRun, stage string, attempt int32) argumentSource {
	return argumentSource{now: run.CreationTimestamp.Time, key: fmt.Sprintf("%s/%s/%d", run.UID, stage, attempt), next: hashString}
}

// hashString is n characters of randomAlphabet drawn from the SHA-256 of
// key: random-looking, and the same for the same key.
func hashString(key string, n int) string {
	out := make([]byte, 0, n)
	for block := 0; len(out) < n; block++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", key, block)))
		for _, b := range sum {
			if len(out) == n {
				break
			}
			out = append(out, randomAlphabet[int(b)%len(randomAlphabet)])
		}
	}
	return string(out)
}

// renderWorkload fills the "{{ argument }}" and "{{{ argument }}}"
// placeholders in every string of a Stage's workload, as Cyclone renders
// the Stage with mustache. Unlike mustache, gyre never HTML-escapes a
// value, and leaves an unknown name as it is, so that the mistake shows.
func renderWorkload(wl *cyclonev1alpha1.PodWorkload, args map[string]string) (*cyclonev1alpha1.PodWorkload, error) {
	out := wl.DeepCopy()
	if len(args) == 0 {
		return out, nil
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		return nil, err
	}
	tree = renderStrings(tree, args)
	if data, err = json.Marshal(tree); err != nil {
		return nil, err
	}
	out = &cyclonev1alpha1.PodWorkload{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("the workload with its arguments filled in: %w", err)
	}
	return out, nil
}

func renderStrings(v any, args map[string]string) any {
	switch v := v.(type) {
	case string:
		return substituteArguments(v, args)
	case []any:
		for i := range v {
			v[i] = renderStrings(v[i], args)
		}
	case map[string]any:
		for k := range v {
			v[k] = renderStrings(v[k], args)
		}
	}
	return v
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
		vol, ok := pv.Volume(name)
		if !ok {
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
