package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workflow is a DAG of Stages.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=wf
// +kubebuilder:printcolumn:name="First Stage",type=string,JSONPath=`.spec.stages[0].name`,description="the first stage listed; printer columns take one value of a JSONPath and cannot count"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Workflow struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec lists the stages and how they depend on each other.
	Spec WorkflowSpec `json:"spec"`
}

// WorkflowSpec lists a workflow's stages.
type WorkflowSpec struct {
	// Resources are the default requests and limits of stage containers.
	// The key is "Resources", capitalised, as Cyclone writes it.
	// +optional
	Resources *corev1.ResourceRequirements `json:"Resources,omitempty"`
	// Stages of the workflow; "depends" makes them a DAG.
	// +listType=map
	// +listMapKey=name
	Stages []StageItem `json:"stages"`
	// Notification says who hears about finished runs.
	// +optional
	Notification Notification `json:"notification,omitempty"`
	// GlobalVariables can be used in stage and resource parameters as
	// "${variables.NAME}". A value may be a literal, "$(random:N)" or
	// "$(timenow:FORMAT)"; a run fixes the final values.
	// +optional
	GlobalVariables []GlobalVariable `json:"globalVariables,omitempty"`
	// HistoryLimit keeps at most this many finished WorkflowRuns of the
	// workflow; older ones are deleted. gyre extension.
	// +optional
	// +kubebuilder:validation:Minimum=1
	HistoryLimit *int32 `json:"historyLimit,omitempty"`
	// TTLSecondsAfterFinished deletes a finished WorkflowRun of the
	// workflow this many seconds after its completion time, beside
	// historyLimit; a run still running is never deleted by it. 0 keeps
	// runs forever, and unset takes the controller's --run-ttl. A run
	// that came from Git is not created again after this deletion. gyre
	// extension; Cyclone ignores the field.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// GlobalVariable is a workflow-wide variable.
type GlobalVariable struct {
	// Name of the variable.
	// +optional
	Name string `json:"name,omitempty"`
	// Value of the variable, or a template for it.
	// +optional
	Value string `json:"value,omitempty"`
}

// NotificationPolicy says when to notify.
// +kubebuilder:validation:Enum=Always;Success;Failure
type NotificationPolicy string

// Notification policies.
const (
	// NotificationPolicyAlways notifies on every result.
	NotificationPolicyAlways NotificationPolicy = "Always"
	// NotificationPolicySuccess notifies when a run succeeds.
	NotificationPolicySuccess NotificationPolicy = "Success"
	// NotificationPolicyFailure notifies when a run fails.
	NotificationPolicyFailure NotificationPolicy = "Failure"
)

// Notification says who hears about finished runs.
type Notification struct {
	// Policy says when to notify.
	// +optional
	Policy NotificationPolicy `json:"policy,omitempty"`
	// Receivers of the notifications.
	// +optional
	Receivers []NotificationReceiver `json:"receivers,omitempty"`
}

// NotificationType is how a notification is sent.
type NotificationType string

// Notification types.
const (
	// NotificationTypeEmail sends e-mail.
	NotificationTypeEmail NotificationType = "Email"
	// NotificationTypeSlack posts to Slack.
	NotificationTypeSlack NotificationType = "Slack"
	// NotificationTypeWebhook POSTs the run to a URL.
	NotificationTypeWebhook NotificationType = "Webhook"
)

// NotificationReceiver is one way to notify.
type NotificationReceiver struct {
	// Type of the receiver.
	Type NotificationType `json:"type"`
	// Addresses to notify: e-mail addresses, channels or URLs.
	// +optional
	Addresses []string `json:"addresses,omitempty"`
}

// StageItem places a Stage in a Workflow.
type StageItem struct {
	// Name of the Stage.
	Name string `json:"name"`
	// Artifacts the stage takes as input, bound to their sources.
	// +optional
	Artifacts []ArtifactItem `json:"artifacts,omitempty"`
	// Depends lists the stages that must finish first.
	// +optional
	Depends []string `json:"depends,omitempty"`
	// Trivial stages may fail without failing the run.
	// +optional
	Trivial bool `json:"trivial,omitempty"`
	// Timeout of one attempt of the stage, as a Go duration. gyre extension.
	// +optional
	Timeout string `json:"timeout,omitempty"`
	// Retries is how many times a failed attempt is tried again. gyre
	// extension.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Retries int32 `json:"retries,omitempty"`
}

// WorkflowList is a list of Workflows.
//
// +kubebuilder:object:root=true
type WorkflowList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workflow `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Workflow{}, &WorkflowList{})
}
