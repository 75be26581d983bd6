package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gyreops/gyre/api/internal/register"
)

// GroupName is the API group of Cyclone's kinds.
const GroupName = "cyclone.dev"

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = &register.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
