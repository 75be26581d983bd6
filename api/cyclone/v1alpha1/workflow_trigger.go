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
// +kubebuilder:printcolumn:name="Last",type=date,JSONPath=`.status.lastFired.time`
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
	// Schedule in cron syntax: five fields, or a descriptor such as
	// "@hourly" or "@every 90m". A "CRON_TZ=Europe/Paris " prefix gives the
	// time zone.
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// Timezone is the IANA time zone the schedule is read in, such as
	// "Europe/Paris"; UTC when empty. A CRON_TZ= prefix in the schedule wins.
	// gyre extension.
	// +optional
	Timezone string `json:"timezone,omitempty"`
	// CatchUp says which scheduled times missed while gyre was not running
	// still start runs. gyre extension.
	// +optional
	// +kubebuilder:default=Latest
	CatchUp CatchUpPolicy `json:"catchUp,omitempty"`
	// MaxCatchUp caps how many missed times the All policy starts runs for;
	// the latest ones win. 10 when unset. gyre extension.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxCatchUp *int32 `json:"maxCatchUp,omitempty"`
	// StartingDeadlineSeconds is how late a scheduled time may still start a
	// run; older times are skipped whatever the catch-up policy. No limit
	// when unset. gyre extension.
	// +optional
	// +kubebuilder:validation:Minimum=0
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`
	// ConcurrencyPolicy says what a scheduled time does while an earlier
	// run of the trigger is still going. gyre extension.
	// +optional
	// +kubebuilder:default=Allow
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`
}

// CatchUpPolicy says which missed scheduled times start runs.
// +kubebuilder:validation:Enum=None;Latest;All
type CatchUpPolicy string

// Catch-up policies.
const (
	// CatchUpNone starts no run for a time missed while no controller was
	// running; a time the controller was up for always starts its run.
	CatchUpNone CatchUpPolicy = "None"
	// CatchUpLatest starts one run for the latest missed time.
	CatchUpLatest CatchUpPolicy = "Latest"
	// CatchUpAll starts one run for each missed time, oldest first, up to
	// maxCatchUp.
	CatchUpAll CatchUpPolicy = "All"
)

// ConcurrencyPolicy says what a scheduled time does while an earlier run is
// still going.
// +kubebuilder:validation:Enum=Allow;Forbid;Replace
type ConcurrencyPolicy string

// Concurrency policies.
const (
	// ConcurrencyAllow starts the new run alongside the running ones.
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
	// ConcurrencyForbid skips the scheduled time.
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyReplace stops the running ones and starts the new run.
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
)

// WorkflowTriggerStatus records what a trigger did.
type WorkflowTriggerStatus struct {
	// Count is how many runs the trigger started.
	// +optional
	Count int `json:"count,omitempty"`
	// LastScheduleTime is the latest scheduled time the trigger has dealt
	// with, whether it started a run or skipped it. It is the ledger that
	// catch-up after a restart is computed from. gyre extension.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is the next time the schedule fires. gyre extension.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// LastFired names the last run the trigger started. gyre extension.
	// +optional
	LastFired *FiredRun `json:"lastFired,omitempty"`
	// LastError says why the trigger last failed to start a run; empty after
	// a success. gyre extension.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// ObservedGeneration is the trigger generation the status was last
	// written for. gyre extension.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// FiredRun is a run a trigger started. gyre extension.
type FiredRun struct {
	// Name of the WorkflowRun, in the trigger's namespace.
	Name string `json:"name"`
	// Time the run was created.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// ScheduleTime is the scheduled time a cron trigger fired for.
	// +optional
	ScheduleTime *metav1.Time `json:"scheduleTime,omitempty"`
	// Event is the SCM event an SCM trigger fired for, such as "push",
	// "tag" or "pullRequest".
	// +optional
	Event string `json:"event,omitempty"`
}

// SCMTrigger fires on events of an SCM repository.
type SCMTrigger struct {
	// Secret names the integration of the SCM. gyre reads the webhook secret
	// from the key "webhookSecret" of the Secret of this name in the
	// trigger's namespace: the HMAC key of GitHub's X-Hub-Signature-256,
	// of Bitbucket's (Cloud and Server) X-Hub-Signature and of Gitea's
	// X-Gitea-Signature, the token GitLab sends as X-Gitlab-Token, or the
	// token a Subversion post-commit hook sends as X-Subversion-Token.
	// Webhook events for a trigger without it are refused.
	// +optional
	Secret string `json:"secret,omitempty"`
	// Repo is the repository's full name without the server, such as
	// "owner/repo" (Bitbucket Cloud: "workspace/slug"; Bitbucket Server:
	// "PROJECT/slug", in any case), or a Subversion repository's UUID.
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
