// Package runlogs keeps the container logs of WorkflowRun stages after
// their Pods are gone.
//
// Store is deliberately small (write, open, list, delete a run) so that
// object storage can implement it later behind the same interface; Dir is
// the embedded default, a directory on the controller's volume. Handler
// serves stored and live logs over HTTP to callers allowed to read the run.
package runlogs
