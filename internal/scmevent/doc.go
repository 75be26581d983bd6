// Package scmevent reads the webhook events of GitHub, GitLab, Bitbucket
// Cloud, Bitbucket Server (Data Center) and Gitea into one shape, for the
// WorkflowTrigger webhook server and the Repository push receiver alike.
//
// It reads what any sender may claim: nothing of an Event is to be
// trusted before Authentic has checked the request's signature.
package scmevent
