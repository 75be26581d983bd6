// Package config holds gyre's install manifests; to Go it exports the
// generated CRDs, so render validates offline against exactly what
// `kubectl apply -k config/default` installs.
package config

import "embed"

// CRDs holds crd/bases/*.yaml, the generated CustomResourceDefinitions.
//
//go:embed crd/bases/*.yaml
var CRDs embed.FS
