package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelStageTemplate marks a Stage as a template ("true"): a blueprint
// whose workload carries "{{ argument }}" placeholders, which users copy
// into Stages of their own. Cyclone has no separate StageTemplate kind
// and lists these in its UI; gyre applies them and never runs them.
const LabelStageTemplate = "stage.cyclone.dev/template"

// Stage is one step of a Workflow: a Pod workload with inputs and outputs.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=stg
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.pod.spec.containers[0].image`,description="image of the stage's first container"
// +kubebuilder:printcolumn:name="Input",type=string,JSONPath=`.spec.pod.inputs.resources[0].name`,description="first input Resource"
// +kubebuilder:printcolumn:name="Delegation",type=string,JSONPath=`.spec.delegation.type`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Stage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the stage's workload; exactly one kind of workload is set.
	// +optional
	Spec StageSpec `json:"spec,omitempty"`
}

// StageSpec is a stage's workload; exactly one of Pod and Delegation is set.
//
// +kubebuilder:validation:XValidation:rule="has(self.pod) != has(self.delegation)",message="exactly one of pod and delegation must be set"
type StageSpec struct {
	// Pod runs the stage as a Pod.
	// +optional
	Pod *PodWorkload `json:"pod,omitempty"`
	// Delegation hands the stage to an external service.
	// +optional
	Delegation *DelegationWorkload `json:"delegation,omitempty"`
}

// PodWorkload is a stage run as a Pod.
type PodWorkload struct {
	// Inputs the stage pulls before it runs.
	// +optional
	Inputs Inputs `json:"inputs,omitempty"`
	// Outputs the stage pushes after it ran.
	// +optional
	Outputs Outputs `json:"outputs,omitempty"`
	// Spec is the workload's Pod spec.
	Spec corev1.PodSpec `json:"spec"`
	// Meta adds labels and annotations to the stage Pod.
	// +optional
	Meta *PodWorkloadMeta `json:"metadata,omitempty"`
}

// PodWorkloadMeta is extra metadata for a stage Pod.
type PodWorkloadMeta struct {
	// Labels added to the stage Pod.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations added to the stage Pod.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DelegationWorkload is a stage run by an external service.
type DelegationWorkload struct {
	// Type of the delegated work, opaque to the engine.
	Type string `json:"type"`
	// URL the engine POSTs the work to.
	URL string `json:"url"`
	// Config is a JSON string for the external service.
	// +optional
	Config string `json:"config,omitempty"`
}

// Argument is a named argument with a default.
type Argument struct {
	Name    string `json:"name"`
	Default string `json:"default"`
}

// Inputs are what a stage pulls in.
type Inputs struct {
	// Resources pulled into the workload.
	// +optional
	Resources []ResourceItem `json:"resources,omitempty"`
	// Arguments of a stage template.
	// +optional
	Arguments []ArgumentValue `json:"arguments,omitempty"`
	// Artifacts from earlier stages.
	// +optional
	Artifacts []ArtifactItem `json:"artifacts,omitempty"`
}

// Outputs are what a stage pushes out.
type Outputs struct {
	// Resources pushed by output resolvers.
	// +optional
	Resources []ResourceItem `json:"resources,omitempty"`
	// Artifacts kept for later stages.
	// +optional
	Artifacts []ArtifactItem `json:"artifacts,omitempty"`
}

// StageList is a list of Stages.
//
// +kubebuilder:object:root=true
type StageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Stage `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Stage{}, &StageList{})
}
