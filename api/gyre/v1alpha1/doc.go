// Package v1alpha1 holds the gyre.dev/v1alpha1 API types: Repository, a
// Git source, and Tenant, a set of targets rendered from it.
//
// +kubebuilder:object:generate=true
// +groupName=gyre.dev
package v1alpha1
