// Package receiver makes Repositories fetch as soon as their Git server
// reports a push, instead of at their next poll.
//
// The Receiver is an http.Handler for signed push events of GitHub,
// GitLab, Bitbucket (Cloud and Server) and Gitea, served at Path on gyre's
// webhook server. An event names its repository by URLs; every Repository
// whose spec.url is one of them and whose spec.webhook.secretRef holds the
// secret the event proves to know gets a new gyre.dev/requestedAt
// annotation, which the Repository controller answers with a fetch.
//
// The request is recorded in the Repository itself, not queued in the
// process that took the event: any replica may receive a push while only
// the leader runs the Repository controller, and the annotation reaches
// the leader through its watch, survives a restart of either, and
// collapses a burst of pushes into one fetch of the latest commit.
package receiver
