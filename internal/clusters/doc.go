// Package clusters connects to execution clusters with the credentials of
// their ExecutionCluster objects: Config turns the credentials into a
// rest.Config, and a Set keeps one connection per cluster, made again
// when the credentials change. The tenant provisioner and the WorkflowRun
// engine share the Set type, each for the connection it needs.
package clusters
