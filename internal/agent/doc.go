// Package agent is the code gyre runs inside a stage Pod, in place of
// Cyclone's helper images: the coordinator sidecar, which waits for the
// workload, records its results as the stage's outputs and publishes its
// artifacts, and the resource resolvers that the Pod's init containers and
// output sidecars run.
//
// It follows the in-Pod contract of package exec (paths, environment
// variables, file names) and Cyclone's conventions: a container writes
// "<key>:<value>" lines to /cyclone/results/__result__, and an output
// resolver pushes once "notify/ok" exists.
package agent
