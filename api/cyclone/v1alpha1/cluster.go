package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ExecutionCluster is a Kubernetes cluster that runs stage Pods.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ec
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.credential.server`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ExecutionCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says how to reach the cluster.
	Spec ExecutionClusterSpec `json:"spec"`
}

// ExecutionClusterSpec says how to reach an execution cluster.
type ExecutionClusterSpec struct {
	// Credential is Cyclone's inline credential for the cluster.
	// +optional
	Credential ClusterCredential `json:"credential,omitempty"`
	// SecretRef names a Secret holding a kubeconfig (key "value" unless
	// Key says otherwise). gyre extension; preferred over Credential because
	// it keeps secrets out of the object.
	// +optional
	SecretRef *SecretKeyReference `json:"secretRef,omitempty"`
}

// SecretKeyReference points to one key of a Secret.
type SecretKeyReference struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Namespace of the Secret.
	Namespace string `json:"namespace"`
	// Key in the Secret's data; "value" when empty.
	// +optional
	Key string `json:"key,omitempty"`
}

// ClusterCredential is Cyclone's inline cluster credential.
type ClusterCredential struct {
	// Server is the address of the cluster's API server.
	// +optional
	Server string `json:"server,omitempty"`
	// User to authenticate as.
	// +optional
	User string `json:"user,omitempty"`
	// Password of User.
	// +optional
	Password string `json:"password,omitempty"`
	// BearerToken authenticates to the cluster.
	// +optional
	BearerToken string `json:"bearerToken,omitempty"`
	// TLSClientConfig configures TLS to the server.
	// +optional
	TLSClientConfig *TLSClientConfig `json:"tlsClientConfig,omitempty"`
	// KubeConfig is a kubeconfig in Cyclone's (client-go internal) shape;
	// kept verbatim.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	KubeConfig *runtime.RawExtension `json:"kubeConfig,omitempty"`
}

// TLSClientConfig holds TLS settings for an execution cluster.
type TLSClientConfig struct {
	// Insecure skips server certificate verification. For testing only.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// CAFile is a path to trusted root certificates.
	// +optional
	CAFile string `json:"caFile,omitempty"`
	// CAData is PEM-encoded root certificates; it wins over CAFile.
	// +optional
	CAData []byte `json:"caData,omitempty"`
}

// ExecutionClusterList is a list of ExecutionClusters.
//
// +kubebuilder:object:root=true
type ExecutionClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExecutionCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ExecutionCluster{}, &ExecutionClusterList{})
}
