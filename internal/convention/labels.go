package convention

// FieldManager is the server-side apply field manager of everything gyre
// writes: the tenant reconciler, provisioning and gyre diff --live's dry
// runs share it, so a dry run shows what the controller's apply would do.
const FieldManager = "gyre"

// FieldManagerGroup is the group of gyre's field manager, as
// fluxcd/pkg/ssa's Owner wants it.
const FieldManagerGroup = "gyre.dev"

// The tenant label pair. Every object gyre renders, applies or provisions
// carries TenantLabel; rendered objects carry TargetLabel too. Pruning,
// the drift watch, adoption and gyre diff --live select on this pair.
const (
	// TenantLabel names the tenant an object belongs to.
	TenantLabel = "gyre.dev/tenant"
	// TargetLabel names the target (cluster) that rendered and applied
	// an object. Pruning deletes only objects whose live labels still
	// name the pruning target.
	TargetLabel = "gyre.dev/target"
)

// The tenant label pair render stamped before there was one pair. The
// tenant reconciler relabels live objects that carry only these, so they
// are neither refused as someone else's, nor left behind by pruning.
const (
	// LegacyTenantLabel is the old tenant label of rendered objects.
	LegacyTenantLabel = "cyclone.dev/tenant"
	// LegacyTargetLabel is the old target label of rendered objects.
	LegacyTargetLabel = "gyre.dev/cluster"
)

// Labels and annotations of the objects gyre renders and applies.
const (
	// RevisionAnnotation is the source revision an object was rendered
	// from (gyre build and diff; the controller leaves it off).
	RevisionAnnotation = "gyre.dev/revision"
	// DigestAnnotation holds the digest of the object gyre last applied.
	DigestAnnotation = "gyre.dev/digest"
	// PruneAnnotation set to PruneDisabled (as a label or an annotation)
	// keeps an object when it leaves Git.
	PruneAnnotation = "gyre.dev/prune"
	// PruneDisabled is the value of PruneAnnotation that keeps an object.
	PruneDisabled = "disabled"
	// TenantFinalizer holds a Tenant until its objects and namespaces are
	// removed.
	TenantFinalizer = "gyre.dev/finalizer"
	// ManagedByLabel marks the objects gyre provisions, with ManagedBy.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of ManagedByLabel.
	ManagedBy = "gyre"
)

// Labels and annotations on the Pods the engine creates. The label
// selector of the engine's Pod informers is LabelManagedBy, so Pods of
// other software never enter its caches.
const (
	// LabelManagedBy marks every Pod the engine creates.
	LabelManagedBy = "gyre.dev/managed-by"
	// ManagedByExec is the value of LabelManagedBy.
	ManagedByExec = "gyre-exec"
	// LabelRunUID carries the UID of the WorkflowRun a Pod belongs to; it
	// tells this run's Pods from those of an earlier run of the same name.
	LabelRunUID = "gyre.dev/run-uid"
	// LabelPodKind is Cyclone's Pod kind label: PodKindWorkload or
	// PodKindGC.
	LabelPodKind = "pod.kubernetes.io/kind"
	// PodKindWorkload is the LabelPodKind of a stage Pod.
	PodKindWorkload = "workload"
	// PodKindGC is the LabelPodKind of a run's GC Pod.
	PodKindGC = "gc"
	// AnnotationRun is "<namespace>/<name>" of the WorkflowRun a Pod
	// belongs to; names may be longer than a label value allows.
	AnnotationRun = "gyre.dev/run"
	// AnnotationStage names the stage a Pod runs.
	AnnotationStage = "gyre.dev/stage"
	// AnnotationAttempt is the stage attempt a Pod runs, from 1.
	AnnotationAttempt = "gyre.dev/attempt"
	// RunFinalizer keeps a deleted WorkflowRun until its Pods and scratch
	// data are gone.
	RunFinalizer = "gyre.dev/workflowrun-cleanup"
)

// Cyclone's labels on runs and workflows, which its server and UI list
// runs by.
const (
	// LabelProject names the Project a run or Workflow belongs to. The
	// engine finds a run's Project by it; triggers copy it onto runs.
	LabelProject = "project.cyclone.dev/name"
	// LabelWorkflow names the Workflow a run runs: the name in its
	// workflowRef.
	LabelWorkflow = "workflow.cyclone.dev/name"
)

// Labels and annotations on the runs a trigger starts.
const (
	// LabelTrigger holds the name of the trigger that started a run,
	// shortened with ShortName when it is longer than a label value may be.
	LabelTrigger = "gyre.dev/trigger"
	// LabelTriggerType is "Cron" or "SCM".
	LabelTriggerType = "gyre.dev/trigger-type"
	// AnnotationTrigger holds the full name of the trigger.
	AnnotationTrigger = "gyre.dev/trigger"
	// AnnotationScheduleTime is the scheduled time a cron run was started
	// for, in RFC 3339.
	AnnotationScheduleTime = "gyre.dev/schedule-time"
	// AnnotationSCMDelivery is the delivery id of the webhook event that
	// started a run.
	AnnotationSCMDelivery = "gyre.dev/scm-delivery"
	// LabelSCMEvent identifies the SCM event that started a run, whatever
	// delivery brought it. A delivery of an event that has a run within
	// the replay window starts none.
	LabelSCMEvent = "gyre.dev/scm-event-key"
	// AnnotationSCMReceived is when the webhook server received the event
	// that started a run, in RFC 3339, by the server's clock: the replay
	// window counts from it.
	AnnotationSCMReceived = "gyre.dev/scm-received"
	// AnnotationSCMSequence numbers the runs of one SCM event, from 1: a
	// delivery outside the replay window of the event's latest run starts
	// the next, whose name follows from the number.
	AnnotationSCMSequence = "gyre.dev/scm-event-sequence"
	// AnnotationSCMEvent is the kind of SCM event that started a run:
	// push, tag, pullRequest, pullRequestComment or postCommit.
	AnnotationSCMEvent = "gyre.dev/scm-event"
)

// InheritedRunLabels are the labels a trigger copies onto its runs:
// Cyclone's project label, and the tenant pair gyre renders onto every
// object, so that Cyclone's project views and gyre's tenancy views see
// the runs.
var InheritedRunLabels = []string{LabelProject, TenantLabel, TargetLabel}

// ShardLabel puts a Repository or a Tenant in a shard: only the replicas
// started with `gyre controller --shard <value>` handle it, and only
// replicas started without --shard handle those without the label. A
// Tenant's runs, triggers and Pods follow the Tenant's label.
const ShardLabel = "gyre.dev/shard"
