// Package exec runs WorkflowRuns: it schedules a run's stages as a DAG, runs
// each stage attempt as one Pod in the worker namespace of the run's
// execution cluster, turns Pod states into stage and run status, enforces
// timeouts, retries, cancellation and parallelism caps, and cleans up with a
// GC Pod once the run has finished.
//
// exec is the run's state machine; what it drives lives beside it:
// exec/podbuild builds stage Pods, exec/template expands Cyclone's
// placeholders, exec/notify sends notifications and delegation requests,
// exec/gc builds GC Pods and keeps container logs. Names, labels, phases,
// timeouts, the DAG and the stage-Pod contract with the in-Pod helpers
// are internal/convention's.
//
// # Restart safety
//
// Every decision is taken from persisted state: the WorkflowRun's status
// and the existence of its Pods. A stage attempt's Pod has the
// deterministic name "<run>-<stage>-<attempt>" (shortened with a hash past
// 63 characters), and the GC Pod "<run>-gc": a round that finds an
// attempt or a run's end not written yet (held back, or lost to a restart
// or a conflict) derives the same again and adopts the Pod, by the cache
// or by the create's AlreadyExists. A controller that stops anywhere never
// creates a second Pod for an attempt, and a finished stage never changes
// again. Timeouts, retry back-offs and the GC phase are computed from
// timestamps in the status and the Pods (see write.go).
//
// # Pods and data
//
// A stage Pod has init containers that pull the stage's input Resources,
// the Stage's own containers, output resolver sidecars that push output
// Resources, and a coordinator sidecar; the helpers are gyre's own
// "gyre resolve" and "gyre coordinator" (package internal/agent) unless a
// Resource names a resolver image, which gets Cyclone's arguments. All
// share the tenant PVC (default "cyclone-pvc-<tenant>", as Cyclone names
// it), where a run keeps its data under "<run>/": "resources/<name>/data",
// "staging/<pod>/<artifact>" (what an attempt writes),
// "artifacts/<stage>/<name>" (what the coordinator publishes once the
// workload succeeded) and "outputs/<stage>/<name>". A persistent Resource
// lives in its own PVC instead, pulled again or updated by its pull
// policy. Each container's "/cyclone/results/__result__" ends up in
// status.stages[<stage>].outputs, written by the coordinator. When the run
// ends, the GC Pod "<run>-gc" removes "<run>/" once every stage Pod has
// ended (unfinished ones are deleted first), then the stage Pods and the
// GC Pod are deleted with one request and status.cleaned is set. A GC
// Pod that succeeds within the status report delay (RunningReportDelay,
// longer with many runs in progress) of the end has its success
// written with the end, in one write, while GC Pods are that quick (see
// foldGC). A finalizer makes a
// deleted run clean up too.
//
// # Delegation
//
// A stage with spec.delegation instead of a Pod is POSTed, as Cyclone does,
// to its URL at most once per attempt (see delegate), and the external
// service reports the stage's end in the run's status.
//
// # Clusters
//
// Pods run on the control cluster unless the run's executionContext names
// an ExecutionCluster, reached with the credentials clusters.Config
// reads from it (a kubeconfig Secret or Cyclone's inline credential), and
// reconnects when they change. The engine keeps one label-filtered Pod cache per
// cluster, started when the ExecutionCluster appears, and watches it with
// the same controller.
//
// # Notifications
//
// Once a run has finished, each address of the Workflow's notification
// receivers gets one delivery attempt, recorded in status.notifications
// under "<type>:<address>": a Webhook gets the run as JSON, an Email the
// run's summary by SMTP (Config.SMTP), and Slack the same summary through
// an incoming-webhook URL or, for a channel, chat.postMessage with
// Config.SlackToken.
//
// # Not yet
//
// Stage events in status.stages[].events are left for later.
package exec
