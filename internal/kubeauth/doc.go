// Package kubeauth checks a caller's bearer token and rights with the API
// server, the way kube-rbac-proxy guards a service: a TokenReview says who
// the token belongs to, a SubjectAccessReview whether that user may do
// something.
package kubeauth
