//go:build tools

// Package tools pins the binaries gyre's tests and code generation need:
// the test control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok), a kubelet for a real node, kubectl, controller-gen and staticcheck. It is its
// own module so their dependencies never leak into gyre's go.mod.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "honnef.co/go/tools/cmd/staticcheck"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
