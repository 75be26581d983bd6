// Package notify delivers what a WorkflowRun sends out of the cluster: the
// notifications of a finished run (a Webhook, Email over SMTP, Slack) and
// the request of a delegation stage, which Cyclone POSTs to an external
// service.
//
// Every request to a tenant's address goes through the engine's outbound
// client (internal/netguard), and every error is a short reason that
// leaves out the address and the answer: a Slack webhook URL is a
// credential, and a receiver's answer is not the tenant's to read in a
// status. Sends run in the background (Queue), so that a receiver that
// takes its time never holds a reconcile worker.
package notify
