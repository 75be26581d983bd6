// Package deps pins gyre's library dependencies while the packages that use them are written.
package deps

import (
	_ "github.com/Masterminds/semver/v3"
	_ "github.com/fluxcd/pkg/runtime/patch"
	_ "github.com/fluxcd/pkg/runtime/conditions"
	_ "github.com/fluxcd/pkg/ssa"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/onsi/gomega"
	_ "github.com/robfig/cron/v3"
	_ "golang.org/x/crypto/ssh"
	_ "golang.org/x/sync/errgroup"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	_ "k8s.io/apimachinery/pkg/runtime"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/utils/clock"
	_ "sigs.k8s.io/controller-runtime"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
	_ "sigs.k8s.io/kustomize/api/krusty"
	_ "sigs.k8s.io/yaml"
	_ "github.com/spf13/cobra"
	_ "github.com/pmezard/go-difflib/difflib"
	_ "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
)
