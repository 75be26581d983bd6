// Package v1alpha1 holds the cyclone.dev/v1alpha1 API types: Cyclone's
// pipeline kinds, wire-compatible with Cyclone so existing Cyclone YAML
// decodes with no field lost.
//
// Field names, enums and meanings follow Cyclone. gyre adds a few optional
// fields (marked "gyre extension") that Cyclone ignores.
//
// +kubebuilder:object:generate=true
// +groupName=cyclone.dev
package v1alpha1
