// Package apply server-side applies sets of Kubernetes objects, writing
// only the objects that differ from what is live, in the manner of
// fluxcd/pkg/ssa: one file per verb (apply, dry run, delete). It knows
// no kind but the cluster-wide definitions and Secrets; what a caller's
// kinds need (objects whose creation starts work) it passes in.
package apply
