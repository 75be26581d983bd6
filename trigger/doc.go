// Package trigger turns WorkflowTriggers into WorkflowRuns, on a cron
// schedule or on a signed SCM webhook event.
//
// Every run a trigger starts has a name derived only from what started it:
// the trigger and the scheduled time for a cron trigger; the trigger, the
// SCM event (whatever delivery brought it) and the number of the event's
// run for a webhook, where a delivery within the replay window of the
// event's latest run starts none, and one after it starts the next. The
// API server refuses a second object of the same name, so a restarted
// controller, two replicas racing, or a replayed webhook delivery can
// never start the same run twice; an AlreadyExists answer means "already
// started".
//
// The cron reconciler keeps a ledger in the trigger's status: the latest
// scheduled time it has dealt with. After a restart it starts runs for the
// times missed since then, as the trigger's catch-up policy says, and
// requeues itself for the next scheduled time.
//
// The webhook server is an http.Handler for GitHub, GitLab, Bitbucket
// Cloud, Bitbucket Server, Gitea and Subversion events. It starts nothing
// for a request that is not signed with, or does not carry, the secret of
// a matching trigger.
package trigger
