package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkflowRun is one execution of a Workflow, with its parameters and
// status.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=wfr
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Workflow",type=string,JSONPath=`.spec.workflowRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.overall.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkflowRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec gives the run's workflow and parameters.
	Spec WorkflowRunSpec `json:"spec"`
	// Status records how the run is going.
	// +optional
	Status WorkflowRunStatus `json:"status,omitempty"`
}

// WorkflowRunSpec gives a run's workflow and parameters.
type WorkflowRunSpec struct {
	// WorkflowRef names the Workflow to run, in the run's namespace.
	// +optional
	WorkflowRef *corev1.ObjectReference `json:"workflowRef,omitempty"`
	// StartStages limits the run to these stages and what follows them.
	// +optional
	StartStages []string `json:"startStages,omitempty"`
	// EndStages limits the run to these stages and what precedes them.
	// +optional
	EndStages []string `json:"endStages,omitempty"`
	// Timeout of the whole run, as a Go duration such as "1h".
	// +optional
	Timeout string `json:"timeout,omitempty"`
	// ServiceAccount the stage Pods run as.
	// +optional
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// ResourceParams override the parameters of Resources.
	// +optional
	ResourceParams []ParameterConfig `json:"resources,omitempty"`
	// StageParams override the parameters of Stages.
	// +optional
	StageParams []ParameterConfig `json:"stages,omitempty"`
	// ExecutionContext says where stage Pods run.
	// +optional
	ExecutionContext *ExecutionContext `json:"executionContext,omitempty"`
	// PresetVolumes are mounted into every stage Pod.
	// +optional
	PresetVolumes []PresetVolume `json:"volumes,omitempty"`
	// GlobalVariables fix the final values of the Workflow's variables;
	// they win over the Workflow's.
	// +optional
	GlobalVariables []GlobalVariable `json:"globalVariables,omitempty"`
	// Stop cancels the run: no new stages start and running stage Pods are
	// deleted. gyre extension.
	// +optional
	Stop bool `json:"stop,omitempty"`
	// Parallelism caps how many stages of the run run at once. gyre
	// extension.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Parallelism *int32 `json:"parallelism,omitempty"`
}

// PresetVolume is a volume mounted into every stage Pod.
type PresetVolume struct {
	// Type of the volume.
	Type PresetVolumeType `json:"type"`
	// Path on the host, in the PVC, or the key in the Secret or ConfigMap.
	// +optional
	Path string `json:"path,omitempty"`
	// MountPath in the containers.
	MountPath string `json:"mountPath"`
	// SubPath to mount.
	// +optional
	SubPath string `json:"subPath,omitempty"`
	// ObjectName names the Secret, ConfigMap or PVC.
	// +optional
	ObjectName *string `json:"objectName,omitempty"`
	// ContainerGroup says which containers get the volume.
	// +optional
	ContainerGroup ContainerGroup `json:"containerGroup,omitempty"`
}

// Volume is the Pod volume, named name, that the preset volume mounts:
// what the engine adds to every stage Pod, and what render checks against
// the tenant's Pod Security level. It is false for an unknown Type.
func (pv PresetVolume) Volume(name string) (corev1.Volume, bool) {
	vol := corev1.Volume{Name: name}
	obj := ""
	if pv.ObjectName != nil {
		obj = *pv.ObjectName
	}
	switch pv.Type {
	case PresetVolumeTypeHostPath:
		vol.HostPath = &corev1.HostPathVolumeSource{Path: pv.Path}
	case PresetVolumeTypePVC:
		vol.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: obj}
	case PresetVolumeTypeSecret:
		vol.Secret = &corev1.SecretVolumeSource{SecretName: obj}
	case PresetVolumeTypeConfigMap:
		vol.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: obj}}
	default:
		return vol, false
	}
	return vol, true
}

// PresetVolumeType is the kind of a preset volume.
// +kubebuilder:validation:Enum=HostPath;PVC;Secret;ConfigMap
type PresetVolumeType string

// Preset volume types.
const (
	// PresetVolumeTypeHostPath mounts a path of the node.
	PresetVolumeTypeHostPath PresetVolumeType = "HostPath"
	// PresetVolumeTypePVC mounts a PVC.
	PresetVolumeTypePVC PresetVolumeType = "PVC"
	// PresetVolumeTypeSecret mounts a Secret key.
	PresetVolumeTypeSecret PresetVolumeType = "Secret"
	// PresetVolumeTypeConfigMap mounts a ConfigMap key.
	PresetVolumeTypeConfigMap PresetVolumeType = "ConfigMap"
)

// ContainerGroup is a group of containers in a stage Pod.
// +kubebuilder:validation:Enum=All;Sidecar;Workload
type ContainerGroup string

// Container groups.
const (
	// ContainerGroupAll is every container.
	ContainerGroupAll ContainerGroup = "All"
	// ContainerGroupSidecar is the engine's sidecars.
	ContainerGroupSidecar ContainerGroup = "Sidecar"
	// ContainerGroupWorkload is the user's containers.
	ContainerGroupWorkload ContainerGroup = "Workload"
)

// ParameterConfig overrides the parameters of one Resource or Stage.
type ParameterConfig struct {
	// Name of the Resource or Stage.
	Name string `json:"name"`
	// Parameters to override.
	// +optional
	Parameters []ParameterItem `json:"parameters,omitempty"`
}

// ExecutionContext says where a run's stage Pods run.
type ExecutionContext struct {
	// Cluster names the ExecutionCluster; empty means the control cluster.
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Namespace of the stage Pods.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// PVC shared by the stages.
	// +optional
	PVC string `json:"pvc,omitempty"`
}

// WorkflowRunStatus records how a run is going.
type WorkflowRunStatus struct {
	// Stages maps stage names to their status.
	// +optional
	Stages map[string]*StageStatus `json:"stages,omitempty"`
	// Overall is the status of the whole run.
	// +optional
	Overall Status `json:"overall,omitempty"`
	// Cleaned is true once the run's Pods and scratch data are removed.
	// +optional
	Cleaned bool `json:"cleaned,omitempty"`
	// Notifications records what was sent to each receiver.
	// +optional
	Notifications map[string]NotificationStatus `json:"notifications,omitempty"`
	// ObservedGeneration is the run generation the status was last written
	// for. gyre extension.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// GlobalVariables are the final values of the Workflow's variables,
	// fixed once when the run starts so that "$(random:N)" and
	// "$(timenow:FORMAT)" keep their values across stages and controller
	// restarts. gyre extension.
	// +optional
	GlobalVariables []GlobalVariable `json:"globalVariables,omitempty"`
	// GC records the removal of the run's Pods and scratch data once the
	// run has finished. gyre extension.
	// +optional
	GC *GCStatus `json:"gc,omitempty"`
}

// GCPhase is the phase of a run's garbage collection.
// +kubebuilder:validation:Enum=Running;Succeeded;Failed
type GCPhase string

// Garbage collection phases.
const (
	// GCRunning: the GC Pod is being created or runs.
	GCRunning GCPhase = "Running"
	// GCSucceeded: the run's scratch data is gone.
	GCSucceeded GCPhase = "Succeeded"
	// GCFailed: every attempt failed; the data is left in place.
	GCFailed GCPhase = "Failed"
)

// GCStatus records the removal of a run's scratch data. gyre extension.
type GCStatus struct {
	// Phase of the garbage collection.
	// +optional
	Phase GCPhase `json:"phase,omitempty"`
	// Attempt is the number of the current GC Pod attempt, from 1.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// StartTime is when the current attempt started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// Message says why the last attempt failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// StageStatus is the status of one stage of a run.
type StageStatus struct {
	// Pod the stage runs in.
	// +optional
	Pod *PodInfo `json:"pod,omitempty"`
	// Status of the stage.
	// +optional
	Status Status `json:"status,omitempty"`
	// Outputs are key-values the stage produced.
	// +optional
	Outputs []KeyValue `json:"outputs,omitempty"`
	// Depends lists the stages this one waits for.
	// +optional
	Depends []string `json:"depends,omitempty"`
	// Trivial stages may fail without failing the run.
	// +optional
	Trivial bool `json:"trivial,omitempty"`
	// Events are warnings seen on the stage Pod.
	// +optional
	Events []StageEvent `json:"events,omitempty"`
	// Attempt is the number of the stage's current attempt, from 1; the
	// stage Pod of attempt N is named "<run>-<stage>-<N>". gyre extension.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// NextAttemptTime is the earliest time the next attempt of a failed
	// stage may start. gyre extension.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`
}

// StageEvent is a warning event seen on a stage Pod.
type StageEvent struct {
	// Name of the event.
	Name string `json:"name"`
	// Reason is a short machine-readable cause.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message for people.
	// +optional
	Message string `json:"message,omitempty"`
	// LastTimestamp the event was seen.
	// +optional
	LastTimestamp *metav1.Time `json:"lastTimestamp,omitempty"`
	// Count of occurrences.
	// +optional
	Count int32 `json:"count,omitempty"`
}

// StatusPhase is the phase of a stage or a run.
// +kubebuilder:validation:Enum=Pending;Running;Waiting;Succeeded;Failed;Cancelled
type StatusPhase string

// Phases of stages and runs.
const (
	// StatusPending: not started yet.
	StatusPending StatusPhase = "Pending"
	// StatusRunning: running.
	StatusRunning StatusPhase = "Running"
	// StatusWaiting: finished but waiting for an external event, such as
	// an approval.
	StatusWaiting StatusPhase = "Waiting"
	// StatusSucceeded: finished without error.
	StatusSucceeded StatusPhase = "Succeeded"
	// StatusFailed: finished with an error.
	StatusFailed StatusPhase = "Failed"
	// StatusCancelled: stopped before it finished.
	StatusCancelled StatusPhase = "Cancelled"
)

// Reasons Cyclone records on a stopped run.
const (
	// ReasonAutoCancelPreviousBuild: a newer run for the same pull request
	// replaced this one.
	ReasonAutoCancelPreviousBuild = "AutoCancelPreviousBuild"
	// ReasonManuallyStop: a user stopped the run.
	ReasonManuallyStop = "ManuallyStop"
	// ReasonManuallyPause: a user paused the run.
	ReasonManuallyPause = "ManuallyPause"
	// ReasonManuallyResume: a user resumed the run.
	ReasonManuallyResume = "ManuallyResume"
)

// PodInfo names a stage's Pod.
type PodInfo struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

// Status is the status of a stage or of a whole run.
type Status struct {
	// Phase of the stage or run.
	// +optional
	Phase StatusPhase `json:"phase,omitempty"`
	// LastTransitionTime is when Phase last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// Reason is a short machine-readable cause of the last transition.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message for people about the last transition.
	// +optional
	Message string `json:"message,omitempty"`
	// StartTime is when the stage or run started; for a stage, when its
	// current attempt started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the stage or run finished. gyre extension.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// NotificationResult is the outcome of sending a notification.
// +kubebuilder:validation:Enum=Succeeded;Failed
type NotificationResult string

// Notification results.
const (
	// NotificationResultSucceeded: the notification was delivered.
	NotificationResultSucceeded NotificationResult = "Succeeded"
	// NotificationResultFailed: the notification could not be delivered.
	NotificationResultFailed NotificationResult = "Failed"
)

// NotificationStatus records a sent notification.
type NotificationStatus struct {
	// Result of sending.
	Result NotificationResult `json:"result"`
	// Message with details.
	// +optional
	Message string `json:"message,omitempty"`
}

// WorkflowRunList is a list of WorkflowRuns.
//
// +kubebuilder:object:root=true
type WorkflowRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkflowRun `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkflowRun{}, &WorkflowRunList{})
}
