// Package config holds gyre's install manifests; to Go it exports the
// generated CRDs, so render validates offline against exactly what
// `kubectl apply -k config/default` installs, and the admission policies,
// which gyre dev and the tests install.
package config

import "embed"

// CRDs holds crd/bases/*.yaml, the generated CustomResourceDefinitions.
//
//go:embed crd/bases/*.yaml
var CRDs embed.FS

// Protection holds protection/deletion-protection.yaml, the
// ValidatingAdmissionPolicy and its binding that refuse deleting a Tenant
// or its namespaces until they are annotated
// gyre.dev/deletion-protection=disabled.
//
//go:embed protection/deletion-protection.yaml
var Protection []byte

// RunFinalizer holds admission/run-finalizer.yaml, the
// MutatingAdmissionPolicy and its binding that give every new WorkflowRun
// the engine's finalizer in its create request.
//
//go:embed admission/run-finalizer.yaml
var RunFinalizer []byte
