// Package exec runs WorkflowRuns: it schedules a run's stages as a DAG, runs
// each stage attempt as one Pod in the worker namespace of the run's
// execution cluster, turns Pod states into stage and run status, enforces
// timeouts, retries, cancellation and parallelism caps, and cleans up with a
// GC Pod once the run has finished.
//
// Every decision is taken from persisted state (the WorkflowRun's status and
// the Pods' existence), and stage Pod names are deterministic
// ("<run>-<stage>-<attempt>"), so a controller that restarts at any point
// adopts what its predecessor created and never runs an attempt twice.
package exec
