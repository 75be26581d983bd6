// Package gc holds what a finished run's clean-up does in its worker
// namespace: the GC Pod that removes the run's scratch data "<run>/" from
// the tenant PVC, and the keeping of every stage container's log, read
// through pods/log, just before its Pod is deleted.
//
// When each step happens, and how it is recorded in the run's status, is
// the engine's (package exec): this package only builds and reads.
package gc
