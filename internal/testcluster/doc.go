// Package testcluster starts a real Kubernetes control plane for gyre's
// tests: etcd and kube-apiserver (through controller-runtime's envtest), and
// on request kube-scheduler, kube-controller-manager and kwok with gyre's own
// Pod lifecycle stages, with gyre's CRDs installed.
//
// The binaries come from bin/ at the repository root (`make tools`, built
// by hack/tools). Several clusters may run at once in one process.
package testcluster
