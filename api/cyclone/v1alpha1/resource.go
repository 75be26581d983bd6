package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Resource types Cyclone ships resolvers for.
const (
	// ImageResourceType is an image in a container registry.
	ImageResourceType = "Image"
	// GitResourceType is a Git repository.
	GitResourceType = "Git"
	// SvnResourceType is a Subversion repository.
	SvnResourceType = "Svn"
	// HTTPResourceType is data fetched or pushed over HTTP.
	HTTPResourceType = "Http"
)

// Resource is data a stage pulls in or pushes out: a Git repository, an
// image, key-values.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=rsc
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Resource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the resource.
	Spec ResourceSpec `json:"spec"`
}

// ResourcePullPolicy says whether a persistent resource is pulled again.
// +kubebuilder:validation:Enum=Always;IfNotExist
type ResourcePullPolicy string

// Resource pull policies.
const (
	// PullAlways removes old data and pulls again.
	PullAlways ResourcePullPolicy = "Always"
	// PullIfNotExist pulls incrementally onto existing data.
	PullIfNotExist ResourcePullPolicy = "IfNotExist"
)

// ResourceSpec describes a resource.
type ResourceSpec struct {
	// Resolver is the image that pulls and pushes this resource.
	// +optional
	Resolver string `json:"resolver,omitempty"`
	// Type of the resource: Git, Image, Svn, Http, or a custom type.
	Type string `json:"type"`
	// Persistent keeps the resource in a PVC across runs.
	// +optional
	Persistent *Persistent `json:"persistent,omitempty"`
	// Parameters of the resource, such as SCM_URL or IMAGE.
	// +optional
	Parameters []ParameterItem `json:"parameters,omitempty"`
	// SupportedOperations lists what a resource type supports (pull,
	// push); used only when registering a resource type.
	// +optional
	SupportedOperations []string `json:"operations,omitempty"`
	// IntegrationBind binds a resource type to an integration type.
	// +optional
	IntegrationBind *IntegrationBind `json:"bind,omitempty"`
}

// IntegrationBind binds a resource type to an integration type.
type IntegrationBind struct {
	// IntegrationType is the integration type, such as DockerRegistry.
	IntegrationType string `json:"integrationType"`
	// ParamBindings maps resource parameter names to integration
	// parameter names.
	// +optional
	ParamBindings map[string]string `json:"paramBindings,omitempty"`
}

// Persistent keeps a resource's data in a PVC.
type Persistent struct {
	// PVC holding the data.
	PVC string `json:"pvc"`
	// Path of the data in the PVC.
	// +optional
	Path string `json:"path,omitempty"`
	// PullPolicy says whether to pull when data is already there.
	// +optional
	PullPolicy ResourcePullPolicy `json:"pullPolicy,omitempty"`
}

// ResourceList is a list of Resources.
//
// +kubebuilder:object:root=true
type ResourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Resource `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Resource{}, &ResourceList{})
}
