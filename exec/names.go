package exec

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
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
	// LabelPodKind is Cyclone's Pod kind label: "workload" or "gc".
	LabelPodKind = "pod.kubernetes.io/kind"
	// AnnotationRun is "<namespace>/<name>" of the WorkflowRun a Pod
	// belongs to; names may be longer than a label value allows.
	AnnotationRun = "gyre.dev/run"
	// AnnotationStage names the stage a Pod runs.
	AnnotationStage = "gyre.dev/stage"
	// AnnotationAttempt is the stage attempt a Pod runs, from 1.
	AnnotationAttempt = "gyre.dev/attempt"

	podKindWorkload = "workload"
	podKindGC       = "gc"
)

// Finalizer keeps a deleted WorkflowRun until its Pods and scratch data are
// gone.
const Finalizer = "gyre.dev/workflowrun-cleanup"

// maxNameLength is the longest Pod name the engine creates: Pod names end
// up as hostnames and in label values, which allow 63 characters.
const maxNameLength = 63

// podName is the name of the Pod of a stage attempt:
// "<run>-<stage>-<attempt>-<hash>". Run and stage names may hold dashes,
// so without the hash run "deploy" stage "prod-test" and run
// "deploy-prod" stage "test" would share a Pod and one would take the
// other's for its own. The hash is of the run and the stage joined by a
// "/", which no name holds, so it tells every pair apart, and it depends
// on nothing but the names, so a restarted engine finds the same Pod.
func podName(run, stage string, attempt int32) string {
	sum := sha256.Sum256([]byte(run + "/" + stage))
	return shortName(run + "-" + stage + "-" + strconv.Itoa(int(attempt)) + "-" + hex.EncodeToString(sum[:])[:podHashLength])
}

// podHashLength is how many hex digits of the run and stage hash a Pod
// name ends with.
const podHashLength = 5

// gcPodName is the name of a run's GC Pod.
func gcPodName(run string) string {
	return shortName(run + "-gc")
}

// shortName returns name unchanged when it fits maxNameLength, and
// otherwise a prefix of it followed by a hash of the whole, so that
// distinct long names stay distinct and the result stays deterministic.
func shortName(name string) string {
	if len(name) <= maxNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:])[:10]
	prefix := strings.TrimRight(name[:maxNameLength-len(hash)-1], "-.")
	return prefix + "-" + hash
}
