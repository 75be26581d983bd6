// Package register collects an API package's types for a runtime.Scheme
// with nothing but apimachinery, so importing gyre's API types does not
// pull in controller-runtime.
package register

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Builder collects the types of one group version; each type's file
// registers it in init, next to its definition.
type Builder struct {
	GroupVersion schema.GroupVersion
	objects      []runtime.Object
}

// Register adds types to the group version.
func (b *Builder) Register(objects ...runtime.Object) {
	b.objects = append(b.objects, objects...)
}

// AddToScheme adds every registered type to s.
func (b *Builder) AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(b.GroupVersion, b.objects...)
	metav1.AddToGroupVersion(s, b.GroupVersion)
	return nil
}
