// Package install proves that gyre's install manifests work as shipped:
// `kubectl apply -k config/default` on a real node runs gyre as a Pod of
// its Deployment, under its ServiceAccount and RBAC, in a namespace that
// enforces the restricted Pod Security Standard; that gyre then fetches a
// Repository, provisions a Tenant and runs a pipeline of real containers;
// that its webhook and metrics Services, its probes and its
// PodDisruptionBudget do their jobs; and that a controller restarted in
// the middle of a run adopts the run's Pods instead of duplicating them.
//
// It has tests only, named TestRealNode...; they skip on machines that
// cannot run a real node (see testcluster.SkipWithoutRealNode).
package install
