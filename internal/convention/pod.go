package convention

import "path"

// The contract between a stage Pod and the helper programs it runs
// (gyre coordinator, gyre resolve, and Cyclone's resolver images): where
// each sees its data, and the environment it gets. Names and paths are
// Cyclone's wherever Cyclone has one, so that Cyclone's resolver images
// run unchanged.
const (
	// HelperWorkspace is a resolver's working directory, Cyclone's
	// "/workspace": an input resolver sees the resource's directory there
	// and leaves the data in "data/"; an output resolver finds the data to
	// push in "data/" and waits for "notify/ok".
	HelperWorkspace = "/workspace"
	// CoordinatorDataPath is where the coordinator sees the run's data
	// directory "<run>/" of the data volume.
	CoordinatorDataPath = "/workspace/data"
	// CoordinatorVolumePath is where the coordinator sees the volume it
	// shares with the other containers.
	CoordinatorVolumePath = "/workspace/coordinator"
	// ToolsBinary is where a workload container that collects output
	// artifacts finds the gyre binary.
	ToolsBinary = "/gyre-tools/gyre"
	// StagingMountPath is where such a container sees the attempt's
	// staging directory.
	StagingMountPath = "/gyre-staging"
	// OutputResourcesDir is where a workload leaves the data of its
	// output resources that name no path, Cyclone's directory.
	OutputResourcesDir = "/cyclone/resources"
	// ResultsDir is where a workload or input container writes its
	// result file, as in Cyclone.
	ResultsDir = "/cyclone/results"
	// ResultFile is the name of a result file: one "<key>:<value>" per
	// line, collected into status.stages[<stage>].outputs.
	ResultFile = "__result__"
	// WorkloadExitAnnotation is how a stage Pod's coordinator learns
	// that its workload has ended, with no access to any API server: once
	// every workload container has terminated, the engine annotates the
	// Pod with their exit codes, as a JSON object by container name, and
	// the kubelet writes the Pod's annotations into the coordinator's
	// CoordinatorPodInfoPath.
	WorkloadExitAnnotation = "gyre.dev/workload-exit"
	// CoordinatorPodInfoPath is where the coordinator sees the stage Pod's
	// annotations, in the file "annotations" of the downward API.
	CoordinatorPodInfoPath = "/workspace/podinfo"
	// PodInfoAnnotations is the file of the Pod's annotations there.
	PodInfoAnnotations = "annotations"
	// TerminationLog is where the coordinator leaves the stage's outputs,
	// as a JSON list of {key, value}: its termination message, which the
	// engine reads from the Pod's status when the Pod ends and copies
	// into status.stages[<stage>].outputs. When the coordinator itself
	// fails, the message says why instead.
	TerminationLog = "/dev/termination-log"
	// MaxTerminationMessage is the most a container's termination message
	// holds; the kubelet truncates longer ones, so the coordinator refuses
	// outputs that do not fit rather than lose some.
	MaxTerminationMessage = 4096
	// NotifyOK and NotifyFailed are the files the coordinator creates in
	// the notify directory: "ok" (Cyclone's) when output resolvers should
	// push, "failed" when the workload failed and there is nothing to push.
	NotifyOK     = "ok"
	NotifyFailed = "failed"

	// EnvRunName, EnvStageName and EnvRunNamespace name the stage's run;
	// Cyclone's variable names.
	EnvRunName      = "WORKFLOWRUN_NAME"
	EnvStageName    = "STAGE_NAME"
	EnvRunNamespace = "METADATA_NAMESPACE"
	// EnvWorkflowName names the run's Workflow; Cyclone's name.
	EnvWorkflowName = "WORKFLOW_NAME"
	// EnvPodName names the stage Pod, whose staging directory the
	// coordinator publishes artifacts from.
	EnvPodName = "POD_NAME"
	// EnvWorkloadContainers lists the workload containers the coordinator
	// waits for, comma-separated.
	EnvWorkloadContainers = "WORKLOAD_CONTAINERS"
	// EnvOutputResources lists the output resources, comma-separated.
	EnvOutputResources = "OUTPUT_RESOURCES"
	// EnvOutputArtifacts lists the output artifacts the coordinator
	// publishes, comma-separated.
	EnvOutputArtifacts = "OUTPUT_ARTIFACTS"
	// EnvResourceName names the Resource a resolver resolves.
	EnvResourceName = "RESOURCE_NAME"
	// EnvWorkdir is HelperWorkspace, as Cyclone's resolver images expect.
	EnvWorkdir = "WORKDIR"
	// EnvPullPolicy is a persistent resource's pull policy, Always or
	// IfNotExist; unset for a resource pulled afresh into each run.
	EnvPullPolicy = "PULL_POLICY"
)

// StagingDir is where, under the run's data directory, a stage attempt's
// workload writes its output artifacts. The coordinator moves them to
// "artifacts/<stage>/<artifact>" only once the workload has succeeded, so
// later stages never see the partial artifacts of a failed attempt.
func StagingDir(pod string) string { return path.Join("staging", pod) }

// ArtifactDir is where, under the run's data directory, later stages find
// a published output artifact.
func ArtifactDir(stage, artifact string) string { return path.Join("artifacts", stage, artifact) }
