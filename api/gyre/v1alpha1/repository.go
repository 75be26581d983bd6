package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Repository is a Git repository gyre polls: the source of Tenants' YAML.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=repo
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.artifact.revision`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Repository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which repository and ref to follow.
	Spec RepositorySpec `json:"spec"`
	// Status holds the last artifact fetched.
	// +optional
	Status RepositoryStatus `json:"status,omitempty"`
}

// RepositorySpec says which repository and ref to follow.
type RepositorySpec struct {
	// URL of the repository: https://, http://, ssh:// or scp-like
	// user@host:path.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^((https?|ssh)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$`
	URL string `json:"url"`
	// Ref is what to follow: exactly one of branch, tag, semver and commit.
	// A missing ref means the branch "main".
	// +optional
	Ref *GitRef `json:"ref,omitempty"`
	// Interval between polls of the remote.
	// +kubebuilder:default="1m"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one Git operation.
	// +kubebuilder:default="60s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// SecretRef names a Secret with credentials: username and password,
	// or bearerToken, or caFile (HTTPS); identity, optional password and
	// known_hosts (SSH).
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`
	// Ignore lists paths, in .gitignore syntax, left out of the artifact.
	// +optional
	Ignore *string `json:"ignore,omitempty"`
	// AllowRemoteBases lets kustomizations of this repository load remote
	// bases. Off by default: a render then depends on nothing but the
	// repository's own commit.
	// +optional
	AllowRemoteBases bool `json:"allowRemoteBases,omitempty"`
	// Suspend stops polling; the last artifact stays.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// Webhook lets signed push events of the Git server, posted to
	// gyre's /webhooks/repositories, make the Repository fetch at once
	// instead of at its next poll. Without it no push event reaches the
	// Repository.
	// +optional
	Webhook *RepositoryWebhook `json:"webhook,omitempty"`
	// Limits cap what a fetch and each target's render may use, so that
	// a hostile repository cannot exhaust the controller. Past a limit
	// the Repository or Tenant is Stalled and the last good artifact and
	// objects stay.
	// +kubebuilder:default={}
	// +optional
	Limits *RepositoryLimits `json:"limits,omitempty"`
}

// RepositoryWebhook says how push events for a Repository are
// authenticated.
type RepositoryWebhook struct {
	// SecretRef names the Secret whose key webhookSecret is the secret the
	// Git server signs push events with (GitHub, Bitbucket, Gitea) or
	// sends as its token (GitLab). An event must prove this very secret:
	// a signature valid for another Repository's secret does not trigger
	// this one.
	SecretRef SecretReference `json:"secretRef"`
}

// RepositoryLimits cap a Repository's artifact (per fetch) and the render
// of each target built from it.
type RepositoryLimits struct {
	// MaxArtifactBytes caps the bytes a fetch receives and the total size
	// of the checked-out files.
	// +kubebuilder:default="256Mi"
	// +optional
	MaxArtifactBytes *resource.Quantity `json:"maxArtifactBytes,omitempty"`
	// MaxFiles caps the number of files (symlinks included) in the
	// checkout.
	// +kubebuilder:default=20000
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxFiles *int64 `json:"maxFiles,omitempty"`
	// MaxRenderBytes caps the YAML size of one target's rendered objects.
	// +kubebuilder:default="32Mi"
	// +optional
	MaxRenderBytes *resource.Quantity `json:"maxRenderBytes,omitempty"`
	// MaxObjects caps the number of objects one target renders.
	// +kubebuilder:default=5000
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxObjects *int64 `json:"maxObjects,omitempty"`
	// RenderTimeout bounds the render of one target.
	// +kubebuilder:default="30s"
	// +optional
	RenderTimeout *metav1.Duration `json:"renderTimeout,omitempty"`
}

// GitRef is what a Repository follows; exactly one field is set.
//
// +kubebuilder:validation:XValidation:rule="[has(self.branch), has(self.tag), has(self.semver), has(self.commit)].filter(x, x).size() == 1",message="exactly one of branch, tag, semver and commit must be set"
type GitRef struct {
	// Branch to follow.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Branch string `json:"branch,omitempty"`
	// Tag to check out.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Tag string `json:"tag,omitempty"`
	// SemVer is a version range, such as ">=1.2.0 <2.0.0" or "~1.4"; the
	// highest tag in range wins.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^\s*(=|!=|>=|<=|=>|=<|>|<|~>|~|\^)?\s*v?(0|[1-9][0-9]*|[xX*])(\.(0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?(\s+-\s+v?(0|[1-9][0-9]*|[xX*])(\.(0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z.-]+)?)?((\s*,\s*|\s+|\s*\|\|\s*)(=|!=|>=|<=|=>|=<|>|<|~>|~|\^)?\s*v?(0|[1-9][0-9]*|[xX*])(\.(0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?(\s+-\s+v?(0|[1-9][0-9]*|[xX*])(\.(0|[1-9][0-9]*|[xX*])){0,2}(-[0-9A-Za-z.-]+)?)?)*\s*$`
	// +optional
	SemVer string `json:"semver,omitempty"`
	// Commit is a full 40-character SHA-1 to check out.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{40}$`
	// +optional
	Commit string `json:"commit,omitempty"`
}

// RepositoryStatus holds the last artifact fetched.
type RepositoryStatus struct {
	// ObservedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the last good checkout; it stays while the remote fails.
	// +optional
	Artifact *Artifact `json:"artifact,omitempty"`
	// LastHandledReconcileAt is the last gyre.dev/requestedAt value handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// Artifact is a checkout of one commit.
type Artifact struct {
	// Revision is "<ref>@sha1:<commit>", such as "main@sha1:3f2a…" or
	// "v1.2.0@sha1:3f2a…".
	Revision string `json:"revision"`
	// Digest of the checked-out tree, "sha256:<hex>", after ignores.
	// +optional
	Digest string `json:"digest,omitempty"`
	// LastUpdateTime is when the artifact last changed.
	// +optional
	LastUpdateTime metav1.Time `json:"lastUpdateTime,omitempty"`
}

// GetConditions returns the Repository's conditions.
func (r *Repository) GetConditions() []metav1.Condition { return r.Status.Conditions }

// SetConditions replaces the Repository's conditions.
func (r *Repository) SetConditions(c []metav1.Condition) { r.Status.Conditions = c }

// RepositoryList is a list of Repositories.
//
// +kubebuilder:object:root=true
type RepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Repository `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Repository{}, &RepositoryList{})
}
