// Package podbuild builds the Pod of a stage attempt from its Stage, its
// Resources, its run and its Tenant's Pod Security level.
//
// A stage Pod is built in parts, each a method of one pod under
// construction and each adding its own containers, volumes and mounts:
// the workload (the Stage's containers, its sidecars, their defaults),
// the input resolvers, the output artifacts, the output resolvers and
// the Docker daemon they may need, the coordinator, the preset volumes,
// and last the hardening of every container gyre adds. The names, paths
// and environment shared with the in-Pod helpers are internal/convention's.
//
// Building is deterministic: the same input gives the same Pod, which lets
// a restarted engine recreate a Pod it recorded but had not yet created.
// No Secret value is ever written into the Pod: a resolved secret
// reference travels in the attempt's run Secret, which the Pod refers to.
package podbuild
