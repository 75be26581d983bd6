// Package web serves gyre's read-only web view: Tenants, Repositories,
// WorkflowRuns, and a run's stages as a DAG with their logs.
//
// On a cluster every page is served to a user, named by the bearer token
// the request carries, and shows only the objects that user may get; the
// API server decides both (TokenReview, SubjectAccessReview). Only gyre
// dev turns that off, with Options.TrustLocal, for a server on 127.0.0.1.
package web
