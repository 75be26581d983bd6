package exec

import "github.com/gyreops/gyre/internal/convention"

// Labels and annotations on the Pods the engine creates; their home is
// internal/convention.
const (
	LabelManagedBy    = convention.LabelManagedBy
	ManagedByExec     = convention.ManagedByExec
	LabelRunUID       = convention.LabelRunUID
	LabelPodKind      = convention.LabelPodKind
	AnnotationRun     = convention.AnnotationRun
	AnnotationStage   = convention.AnnotationStage
	AnnotationAttempt = convention.AnnotationAttempt

	podKindWorkload = convention.PodKindWorkload
	podKindGC       = convention.PodKindGC
)

// Finalizer keeps a deleted WorkflowRun until its Pods and scratch data are
// gone.
const Finalizer = convention.RunFinalizer

// podName is the name of the Pod of a stage attempt (convention.PodName).
func podName(run, stage string, attempt int32) string { return convention.PodName(run, stage, attempt) }

// gcPodName is the name of a run's GC Pod.
func gcPodName(run string) string { return convention.GCPodName(run) }

// shortName is convention.ShortName.
func shortName(name string) string { return convention.ShortName(name) }
