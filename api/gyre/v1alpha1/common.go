package v1alpha1

// Condition types and annotations shared by gyre's kinds. The Ready,
// Reconciling and Stalled types are fluxcd/pkg/apis/meta's.
const (
	// ReconcileRequestAnnotation asks for an immediate reconcile when its
	// value changes (any string, usually a timestamp).
	ReconcileRequestAnnotation = "gyre.dev/requestedAt"
)

// ObjectReference names a cluster-scoped object.
type ObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// SecretReference names a Secret in a namespace.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
}
