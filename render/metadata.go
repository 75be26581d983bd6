package render

import (
	"k8s.io/apimachinery/pkg/api/validate/content"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// checkMetadata checks an object's name, labels and annotations the way
// the API server will, so that a name an overlay made invalid (a
// nameSuffix of "_One") or a label value with a space fails the render,
// naming its file, and not the apply half-way through a target.
//
// Names follow the rule of their kind: a DNS label for a Namespace, an
// RFC 1035 label for a Service, a path segment for RBAC objects, and a
// DNS subdomain for every other core kind and every custom resource,
// which is what the API server checks a CRD's objects against. The name
// of a kind gyre knows neither as core nor by its CRD is left to its API
// server.
func checkMetadata(file string, o *unstructured.Unstructured, schemas *Schemas) []Error {
	meta := field.NewPath("metadata")
	var errs field.ErrorList
	if name := o.GetName(); name != "" {
		if validate := nameRule(o, schemas); validate != nil {
			for _, msg := range validate(name, false) {
				errs = append(errs, field.Invalid(meta.Child("name"), name, msg))
			}
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(o.GetLabels(), meta.Child("labels"))...)
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(o.GetAnnotations(), meta.Child("annotations"))...)
	out := make([]Error, 0, len(errs))
	for _, e := range errs {
		out = append(out, fieldError(file, o, e))
	}
	return out
}

// nameRule returns the API server's name check for o's kind, or nil when
// gyre does not know it.
func nameRule(o *unstructured.Unstructured, schemas *Schemas) apimachineryvalidation.ValidateNameFunc {
	gvk := o.GroupVersionKind()
	switch {
	case gvk.Group == "" && gvk.Kind == "Namespace":
		return apimachineryvalidation.ValidateNamespaceName
	case gvk.Group == "" && gvk.Kind == "Service":
		return func(name string, _ bool) []string { return validation.IsDNS1035Label(name) }
	case gvk.Group == "rbac.authorization.k8s.io":
		return func(name string, _ bool) []string { return content.IsPathSegmentName(name) }
	case gvk.Group == "":
		return apimachineryvalidation.NameIsDNSSubdomain
	}
	if schemas != nil {
		if _, crd := schemas.scopes[gvk.GroupKind()]; crd {
			return apimachineryvalidation.NameIsDNSSubdomain
		}
	}
	return nil
}
