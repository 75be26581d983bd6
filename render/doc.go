// Package render turns a checked-out repository and a Target into a
// deterministic, validated set of objects for one (tenant, cluster).
//
// Rendering is a pure function of the files: it runs kustomize in-process
// with gyre's name-reference rules for Cyclone kinds, confines every read to
// the repository, forces the objects into the tenant's namespace, stamps
// them, and validates them against the CRD schemas and Cyclone's own rules.
// Stages and runs are checked against the target's Pod Security level with
// the upstream checks, and may only name the execution clusters,
// namespace, PVC and ServiceAccounts the tenant was given.
// It never talks to a cluster.
package render
