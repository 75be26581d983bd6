package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// WorkflowTrigger starts WorkflowRuns on a schedule or on SCM events.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=wft
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Workflow",type=string,JSONPath=`.spec.workflowRef.name`
// +kubebuilder:printcolumn:name="Count",type=integer,JSONPath=`.status.count`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkflowTrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says when to start runs and with what.
	Spec WorkflowTriggerSpec `json:"spec"`
	// Status records what the trigger did.
	// +optional
	Status WorkflowTriggerStatus `json:"status,omitempty"`
}

// TriggerType is the kind of a trigger.
// +kubebuilder:validation:Enum=Cron;SCM;Webhook
type TriggerType string

// Trigger types.
const (
	// TriggerTypeCron fires on a schedule.
	TriggerTypeCron TriggerType = "Cron"
	// TriggerTypeSCM fires on SCM events (push, tag, pull request).
	TriggerTypeSCM TriggerType = "SCM"
	// TriggerTypeWebhook fires on a plain webhook call.
	TriggerTypeWebhook TriggerType = "Webhook"
)

// WorkflowTriggerSpec says when to start runs and with what.
type WorkflowTriggerSpec struct {
	// Type of the trigger.
	Type TriggerType `json:"type"`
	// Parameters of the runs it starts.
	// +optional
	Parameters []ParameterItem `json:"parameters,omitempty"`
	// Cron configures a Cron trigger.
	// +optional
	Cron CronTrigger `json:"cron,omitempty"`
	// SCM configures an SCM trigger.
	// +optional
	SCM SCMTrigger `json:"scm,omitempty"`
	// Disabled triggers start nothing.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// WorkflowRunSpec is the spec of the runs the trigger starts.
	WorkflowRunSpec `json:",inline"`
}

// CronTrigger is a schedule.
type CronTrigger struct {
	// Schedule in cron syntax.
	// +optional
	Schedule string `json:"schedule,omitempty"`
}

// WorkflowTriggerStatus records what a trigger did.
type WorkflowTriggerStatus struct {
	// Count is how many runs the trigger started.
	// +optional
	Count int `json:"count,omitempty"`
}

// SCMTrigger fires on events of an SCM repository.
type SCMTrigger struct {
	// Secret names the integration of the SCM.
	// +optional
	Secret string `json:"secret,omitempty"`
	// Repo is the repository's full name without the server, such as
	// "owner/repo".
	// +optional
	Repo string `json:"repo,omitempty"`
	// SCMTriggerPolicy says which events fire.
	SCMTriggerPolicy `json:",inline"`
}

// SCMTriggerPolicy says which SCM events fire a trigger.
type SCMTriggerPolicy struct {
	// Push events.
	// +optional
	Push SCMTriggerPush `json:"push,omitempty"`
	// TagRelease events.
	// +optional
	TagRelease SCMTriggerTagRelease `json:"tagRelease,omitempty"`
	// PullRequest events.
	// +optional
	PullRequest SCMTriggerPullRequest `json:"pullRequest,omitempty"`
	// PullRequestComment events.
	// +optional
	PullRequestComment SCMTriggerPullRequestComment `json:"pullRequestComment,omitempty"`
	// PostCommit events (Subversion).
	// +optional
	PostCommit SCMTriggerPostCommit `json:"postCommit,omitempty"`
}

// SCMTriggerBasic turns an event policy on.
type SCMTriggerBasic struct {
	// Enabled turns the policy on.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
}

// SCMTriggerTagRelease fires on tag releases.
type SCMTriggerTagRelease struct {
	SCMTriggerBasic `json:",inline"`
}

// SCMTriggerPush fires on pushes.
type SCMTriggerPush struct {
	SCMTriggerBasic `json:",inline"`
	// Branches that fire; empty means all.
	// +optional
	Branches []string `json:"branches,omitempty"`
}

// SCMTriggerPullRequest fires on pull requests.
type SCMTriggerPullRequest struct {
	SCMTriggerBasic `json:",inline"`
	// Branches are the target branches that fire; empty means all.
	// +optional
	Branches []string `json:"branches,omitempty"`
}

// SCMTriggerPullRequestComment fires on pull request comments.
type SCMTriggerPullRequestComment struct {
	SCMTriggerBasic `json:",inline"`
	// Comments that fire.
	// +optional
	Comments []string `json:"comments,omitempty"`
}

// SCMTriggerPostCommit fires on Subversion post-commit events.
type SCMTriggerPostCommit struct {
	SCMTriggerBasic `json:",inline"`
	// RootURL of the Subversion repository.
	// +optional
	RootURL string `json:"rootURL,omitempty"`
	// WorkflowURL is the repository URL the runs check out.
	// +optional
	WorkflowURL string `json:"workflowURL,omitempty"`
}

// WorkflowTriggerList is a list of WorkflowTriggers.
//
// +kubebuilder:object:root=true
type WorkflowTriggerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkflowTrigger `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkflowTrigger{}, &WorkflowTriggerList{})
}
