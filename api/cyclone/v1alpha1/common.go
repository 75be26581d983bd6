package v1alpha1

// ResourceItem names a Resource a stage reads or writes.
type ResourceItem struct {
	// Name of the Resource.
	// +optional
	Name string `json:"name,omitempty"`
	// Type of the resource, such as Git or Image. Stage templates name only
	// a type and leave the Resource to the Workflow.
	// +optional
	Type string `json:"type,omitempty"`
	// Path is where an input is mounted in the workload containers, or where
	// the workload leaves an output for the output resolver to push.
	// +optional
	Path string `json:"path,omitempty"`
}

// ArtifactItem is a file or directory passed between stages.
type ArtifactItem struct {
	// Name of the artifact.
	Name string `json:"name"`
	// Path of the artifact in the workload container.
	// +optional
	Path string `json:"path,omitempty"`
	// Source, for an input artifact, as "<stage>/<artifact>".
	// +optional
	Source string `json:"source,omitempty"`
}

// ParameterItem is a named value; Value may be a template such as
// "${variables.IMAGE_TAG}".
type ParameterItem struct {
	// Name of the parameter.
	Name string `json:"name"`
	// Value of the parameter; nil means unset.
	// +optional
	Value *string `json:"value,omitempty"`
	// Description of the parameter.
	// +optional
	Description string `json:"description,omitempty"`
	// Required means a run must give the parameter a value.
	// +optional
	Required bool `json:"required,omitempty"`
}

// ArgumentValue is a stage template argument.
type ArgumentValue ParameterItem

// KeyValue is a string pair, used for stage outputs.
type KeyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}
