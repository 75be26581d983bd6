package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations a user sets on a Tenant.
const (
	// AllowMassPruneAnnotation lets a reconcile at the named revision prune
	// more than half of a target's inventory.
	AllowMassPruneAnnotation = "gyre.dev/allow-mass-prune"
	// AdoptAnnotation, set to "true" on an object gyre did not create
	// (a namespace, or an object in a tenant namespace), lets gyre take it
	// over. Without it gyre refuses to manage what someone else made.
	AdoptAnnotation = "gyre.dev/adopt"
	// DeletionProtectionAnnotation, set to DeletionProtectionDisabled on a
	// Tenant or one of its namespaces, lets it be deleted: the deletion
	// protection policy of config/protection refuses it otherwise.
	DeletionProtectionAnnotation = "gyre.dev/deletion-protection"
	// DeletionProtectionDisabled is the value of
	// DeletionProtectionAnnotation that lifts the protection.
	DeletionProtectionDisabled = "disabled"
)

// Tenant is a team's slice of gyre: its pipelines, rendered from a
// Repository for each of its clusters, and the namespaces they run in.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=tn
// +kubebuilder:subresource:status
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 48",message="metadata.name: at most 48 characters, so that cyclone-<name>-worker is a valid namespace"
// +kubebuilder:validation:XValidation:rule="!self.metadata.name.endsWith('-worker')",message="metadata.name: must not end in -worker: cyclone-<name> would be the worker namespace of the tenant <name> without -worker"
// +kubebuilder:printcolumn:name="Pod-Security",type=string,JSONPath=`.spec.podSecurity`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`
// +kubebuilder:printcolumn:name="Objects",type=integer,JSONPath=`.status.objects`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says where the tenant's YAML is and where it runs.
	Spec TenantSpec `json:"spec"`
	// Status reports each target.
	// +optional
	Status TenantStatus `json:"status,omitempty"`
}

// DeletionPolicy says what happens to a tenant's objects when it is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

// Deletion policies.
const (
	// DeletionPolicyDelete removes the inventory and the tenant's namespaces.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves everything in place.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// TenantSpec says where a tenant's YAML is and where it runs.
type TenantSpec struct {
	// RepositoryRef names the Repository holding the tenant's YAML.
	RepositoryRef ObjectReference `json:"repositoryRef"`
	// Path of the tenant's directory in the repository; tenants/<name>
	// when empty.
	// +optional
	// +kubebuilder:validation:Pattern=`^[^/].*$`
	Path string `json:"path,omitempty"`
	// Clusters the tenant runs on: one target each. Empty means one target
	// on the control cluster, named "default".
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Clusters []TenantCluster `json:"clusters,omitempty"`
	// Quota is the ResourceQuota of the worker namespace on each cluster.
	// +optional
	Quota corev1.ResourceList `json:"quota,omitempty"`
	// Storage is the tenant PVC on each cluster. Unset, every cluster
	// still gets one, of 10Gi in the cluster's default StorageClass: every
	// stage Pod of the tenant mounts it.
	// +optional
	Storage *TenantStorage `json:"storage,omitempty"`
	// Prune deletes objects that left Git; on unless set to false.
	// +kubebuilder:default=true
	// +optional
	Prune *bool `json:"prune,omitempty"`
	// Suspend stops reconciling; nothing is applied or pruned.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// Interval of the full drift check.
	// +kubebuilder:default="5m"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one target's apply.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// DeletionPolicy says what deleting the Tenant removes.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
	// AllowedKinds a target may contain; the cyclone.dev kinds, ConfigMaps
	// and Secrets when empty.
	// +optional
	AllowedKinds []metav1.GroupKind `json:"allowedKinds,omitempty"`
	// PodSecurity is the Pod Security Standards level every Pod of the
	// tenant must meet, gyre's own helpers included: restricted,
	// baseline or privileged. Stages and runs are checked against it
	// when rendered and again just before their Pods are created, and
	// the worker namespaces carry it in their pod-security.kubernetes.io
	// labels, so the API server enforces it too.
	// +kubebuilder:validation:Enum=restricted;baseline;privileged
	// +kubebuilder:default=baseline
	// +optional
	PodSecurity string `json:"podSecurity,omitempty"`
	// WorkerAccess grants the worker ServiceAccount, which stage Pods
	// run as, rights in its worker namespace beyond none at all:
	// PatchPods to get and patch Pods, ReadSecrets to read Secrets.
	// Stage Pods need neither; a stage gets an API token only when its
	// Stage sets automountServiceAccountToken.
	// +optional
	// +listType=set
	WorkerAccess []WorkerAccess `json:"workerAccess,omitempty"`
	// Scheduling says which nodes the tenant's Pods may run on and which
	// priority they may take. Without it a Stage could tolerate the
	// taints that keep other tenants' and the control plane's nodes to
	// themselves, preempt other Pods with a high priority class, or
	// choose a runtime that is not the nodes' default. Unset, stage Pods
	// may carry no toleration, priority class or runtime class.
	// +optional
	Scheduling *TenantScheduling `json:"scheduling,omitempty"`
}

// TenantScheduling places a tenant's Pods. Every Pod of the tenant, gyre's
// GC Pods included, gets its NodeSelector and Tolerations; a Stage may
// narrow them but not widen them. A Pod may never name its node
// (spec.nodeName), since that skips the scheduler and every taint.
type TenantScheduling struct {
	// NodeSelector is added to every Pod of the tenant. A Stage may add
	// keys of its own, but not give one of these another value.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations are added to every Pod of the tenant, and are the only
	// ones a Stage may carry: a Stage's toleration must be one of these,
	// or narrower (an Exists toleration here allows any value of its
	// key; one without effect allows every effect).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// PriorityClassNames a Stage may name in priorityClassName. None when
	// empty: stage Pods then get the cluster's default priority.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	PriorityClassNames []string `json:"priorityClassNames,omitempty"`
	// RuntimeClassNames a Stage may name in runtimeClassName. None when
	// empty: stage Pods then run in the nodes' default runtime. A
	// RuntimeClass is listed here only when its own scheduling keeps
	// within the tenant's nodes, since the API server adds a
	// RuntimeClass's tolerations and node selector to the Pods that name
	// it.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	RuntimeClassNames []string `json:"runtimeClassNames,omitempty"`
}

// WorkerAccess is a right a Tenant grants its worker ServiceAccount.
// +kubebuilder:validation:Enum=PatchPods;ReadSecrets
type WorkerAccess string

// Rights a Tenant may grant its worker ServiceAccount.
const (
	// WorkerAccessPatchPods lets stage Pods get and patch the Pods of
	// their worker namespace.
	WorkerAccessPatchPods WorkerAccess = "PatchPods"
	// WorkerAccessReadSecrets lets stage Pods read the Secrets of their
	// worker namespace.
	WorkerAccessReadSecrets WorkerAccess = "ReadSecrets"
)

// TenantCluster is one cluster a tenant runs on.
type TenantCluster struct {
	// Name of the target; the overlay tenants/<tenant>/<name> is used when
	// it exists.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// ExecutionClusterRef names the ExecutionCluster stage Pods run on; the
	// control cluster when empty.
	// +optional
	ExecutionClusterRef *ObjectReference `json:"executionClusterRef,omitempty"`
	// Path overrides the overlay directory of this target.
	// +optional
	// +kubebuilder:validation:Pattern=`^[^/].*$`
	Path string `json:"path,omitempty"`
}

// TenantStorage is the tenant PVC.
type TenantStorage struct {
	// Size of the PVC.
	Size resource.Quantity `json:"size"`
	// StorageClassName of the PVC; the cluster default when empty.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// TenantStatus reports each target of a tenant.
type TenantStatus struct {
	// ObservedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, summarised over targets.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastAppliedRevision is the revision every target last applied, or
	// empty while they differ.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// Objects is the number of objects in all inventories.
	// +optional
	Objects int `json:"objects,omitempty"`
	// Targets holds one entry per cluster.
	// +optional
	// +listType=map
	// +listMapKey=cluster
	Targets []TargetStatus `json:"targets,omitempty"`
	// LastHandledReconcileAt is the last gyre.dev/requestedAt value handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
	// ExecutionClusters holds a worker namespace of the tenant, sorted.
	// When no target names one of them any longer, its worker namespace
	// is removed there, and it leaves this list.
	// +optional
	ExecutionClusters []string `json:"executionClusters,omitempty"`
}

// TargetStatus reports one (tenant, cluster) target.
type TargetStatus struct {
	// Cluster is the target's name.
	Cluster string `json:"cluster"`
	// LastAppliedRevision is the revision last applied in full.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// LastAttemptedRevision is the revision last tried.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// Inventory lists the objects the target applied.
	// +optional
	Inventory *Inventory `json:"inventory,omitempty"`
	// StartedRuns lists the WorkflowRuns from Git the target has created,
	// sorted by ID. A run listed here is never created again: once it
	// finished and was deleted, by hand, a Workflow's historyLimit or its
	// TTL, re-creating it would run it again. A run leaves the list when
	// it leaves Git.
	// +optional
	// +kubebuilder:validation:MaxItems=2000
	StartedRuns []StartedRun `json:"startedRuns,omitempty"`
	// Conditions of the target: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Inventory lists applied objects.
type Inventory struct {
	// Entries, sorted.
	Entries []InventoryEntry `json:"entries"`
}

// InventoryEntry is one applied object.
type InventoryEntry struct {
	// ID is "<namespace>_<name>_<group>_<kind>", as Flux writes it.
	ID string `json:"id"`
	// Version is the object's API version.
	Version string `json:"v"`
}

// StartedRun is a WorkflowRun a target created from Git.
type StartedRun struct {
	// ID is the run's inventory ID, "<namespace>_<name>_<group>_<kind>".
	ID string `json:"id"`
	// Digest is the short sha256 of the canonical JSON of the run's spec
	// as rendered from Git when it was created.
	Digest string `json:"digest"`
}

// GetConditions returns the Tenant's conditions.
func (t *Tenant) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the Tenant's conditions.
func (t *Tenant) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }

// TenantList is a list of Tenants.
//
// +kubebuilder:object:root=true
type TenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tenant `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Tenant{}, &TenantList{})
}
