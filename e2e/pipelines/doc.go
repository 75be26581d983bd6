// Package pipelines runs gyre end to end on a real node: a Repository on
// a Git server, a Tenant, and WorkflowRuns whose stages are real
// containers, with gyre's resolver, coordinator and GC Pod in gyre's own
// image. Its tests are named TestRealNode... and skip where a real node
// cannot run (see testcluster.SkipWithoutRealNode).
package pipelines
