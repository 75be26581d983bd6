package reconciler

import (
	"errors"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gyreops/gyre/source"
)

// Reasons of a Repository's conditions and events, besides the failure
// reasons of source.Reason.
const (
	// ReasonArtifactStored: the artifact of the ref's current commit is on
	// disk.
	ReasonArtifactStored = "ArtifactStored"
	// ReasonNewArtifact is the event reason for a new revision.
	ReasonNewArtifact = "NewArtifact"
	// ReasonSecretNotFound: spec.secretRef names a Secret that does not
	// exist.
	ReasonSecretNotFound = "SecretNotFound"
)

// repositoryOutcome is what one reconcile of a Repository found.
type repositoryOutcome struct {
	// revision of the artifact in status after the reconcile; empty when
	// there is none.
	revision string
	// err is the failure, nil on success.
	err error
	// terminal says retrying cannot help until the spec changes.
	terminal bool
}

// reasonedError carries a condition reason for failures source does not
// classify, such as a missing Secret.
type reasonedError struct {
	reason string
	err    error
}

func (e *reasonedError) Error() string { return e.err.Error() }
func (e *reasonedError) Unwrap() error { return e.err }

// repositoryReason picks the condition reason for a failure.
func repositoryReason(err error) string {
	var re *reasonedError
	if errors.As(err, &re) {
		return re.reason
	}
	return string(source.ReasonOf(err))
}

// repositoryConditions returns the Ready, Reconciling and Stalled
// conditions for an outcome; a nil condition is to be removed. A failure
// keeps the last artifact, and the message says so, so users know what
// is still served.
func repositoryConditions(o repositoryOutcome, generation int64) (ready, reconciling, stalled *metav1.Condition) {
	cond := func(t string, s metav1.ConditionStatus, reason, msg string) *metav1.Condition {
		return &metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation}
	}
	if o.err == nil {
		return cond(meta.ReadyCondition, metav1.ConditionTrue, ReasonArtifactStored,
			fmt.Sprintf("stored artifact for revision %s", o.revision)), nil, nil
	}
	reason := repositoryReason(o.err)
	msg := o.err.Error()
	if o.revision != "" {
		msg += fmt.Sprintf("; serving the last artifact, %s", o.revision)
	}
	ready = cond(meta.ReadyCondition, metav1.ConditionFalse, reason, msg)
	if o.terminal {
		return ready, nil, cond(meta.StalledCondition, metav1.ConditionTrue, reason, msg)
	}
	return ready, cond(meta.ReconcilingCondition, metav1.ConditionTrue, meta.ProgressingWithRetryReason, msg), nil
}

// setRepositoryConditions writes the three owned conditions into to.
func setRepositoryConditions(to *[]metav1.Condition, ready, reconciling, stalled *metav1.Condition) {
	for _, c := range []struct {
		t    string
		cond *metav1.Condition
	}{{meta.ReadyCondition, ready}, {meta.ReconcilingCondition, reconciling}, {meta.StalledCondition, stalled}} {
		if c.cond == nil {
			apimeta.RemoveStatusCondition(to, c.t)
			continue
		}
		apimeta.SetStatusCondition(to, *c.cond)
	}
}

// repositoryEvent decides the one event a reconcile deserves, if any: a
// new revision, a failure that starts (or changes reason), or a recovery.
// An unchanged poll and a failure that repeats are silent.
func repositoryEvent(before *metav1.Condition, beforeRevision string, o repositoryOutcome) (eventType, reason, msg string, ok bool) {
	wasFailing := before != nil && before.Status == metav1.ConditionFalse
	if o.err != nil {
		reason := repositoryReason(o.err)
		if wasFailing && before.Reason == reason {
			return "", "", "", false
		}
		return corev1.EventTypeWarning, reason, o.err.Error(), true
	}
	switch {
	case o.revision != beforeRevision:
		return corev1.EventTypeNormal, ReasonNewArtifact, fmt.Sprintf("stored artifact for revision %s", o.revision), true
	case wasFailing:
		return corev1.EventTypeNormal, ReasonArtifactStored, fmt.Sprintf("recovered; artifact for revision %s is current", o.revision), true
	}
	return "", "", "", false
}
