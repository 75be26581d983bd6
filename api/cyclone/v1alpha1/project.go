package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Project groups Workflows and holds their defaults.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=proj
// +kubebuilder:subresource:status
type Project struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec holds the defaults of the project's Workflows.
	Spec ProjectSpec `json:"spec"`
	// Status holds statistics of the project.
	// +optional
	Status *ProjectStatus `json:"status,omitempty"`
}

// ProjectSpec holds the defaults of a project's Workflows.
type ProjectSpec struct {
	// Integrations names the default integration of each type.
	// +optional
	Integrations []IntegrationItem `json:"integrations,omitempty"`
	// Quota is the default quota of the project's workflows, such as
	// {"requests.cpu": "2", "limits.memory": "4Gi"}.
	// +optional
	Quota map[corev1.ResourceName]string `json:"quota,omitempty"`
	// ImagePullSecrets are the default pull secrets of stage Pods; a Stage
	// that sets its own replaces them. gyre extension.
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
}

// ProjectStatus holds statistics of a project.
type ProjectStatus struct {
	// WorkflowCount is the number of Workflows in the project.
	// +optional
	WorkflowCount int `json:"workflowCount,omitempty"`
}

// IntegrationItem names the default integration of one type.
type IntegrationItem struct {
	// Type of the integration, such as DockerRegistry.
	Type string `json:"type"`
	// Name of the default integration of that type.
	Name string `json:"name"`
}

// ProjectList is a list of Projects.
//
// +kubebuilder:object:root=true
type ProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Project `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Project{}, &ProjectList{})
}
