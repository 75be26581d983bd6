package reconciler

import (
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

// Reasons of a Tenant's and its targets' conditions.
const (
	// ReasonApplied: every object of the target is applied.
	ReasonApplied = "ReconciliationSucceeded"
	// ReasonProgressing: the target is being applied.
	ReasonProgressing = "Progressing"
	// ReasonRenderFailed: the target's files do not render or validate.
	ReasonRenderFailed = "RenderFailed"
	// ReasonPruneGuard: the reconcile would delete more than half of the
	// target's inventory; see gyrev1alpha1.AllowMassPruneAnnotation.
	ReasonPruneGuard = "PruneGuard"
	// ReasonApplyFailed: the API server refused an apply or a prune; it
	// is retried with backoff.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonArtifactUnavailable: the Repository has no artifact yet.
	ReasonArtifactUnavailable = "ArtifactUnavailable"
	// ReasonProvisionFailed: the tenant's namespaces, quota, PVC or RBAC
	// could not be made on some cluster.
	ReasonProvisionFailed = "ProvisionFailed"
	// ReasonTargetsNotReady summarises targets that are not Ready.
	ReasonTargetsNotReady = "TargetsNotReady"
)

// targetPhase is what happened to a target in one reconcile.
type targetPhase int

const (
	phaseApplied targetPhase = iota
	phaseProgressing
	phaseRenderFailed
	phasePruneGuard
	phaseApplyFailed
)

// targetOutcome is the input of targetConditions.
type targetOutcome struct {
	phase targetPhase
	// reason replaces the phase's own reason when set.
	reason   string
	revision string
	objects  int
	message  string
	// notes are sentences an applied target adds to its Ready message,
	// such as a run that changed in Git; they make the reason
	// ReasonRunChanged.
	notes []string
}

// targetConditions returns a target's Ready, Reconciling and Stalled
// conditions for an outcome. Render failures and the prune guard stall
// the target: only a new commit or an annotation moves it. Apply failures
// are retried, so they leave it Reconciling.
func targetConditions(o targetOutcome, generation int64) []metav1.Condition {
	cond := func(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation}
	}
	reason := func(r string) string {
		if o.reason != "" {
			return o.reason
		}
		return r
	}
	switch o.phase {
	case phaseApplied:
		msg, r := fmt.Sprintf("Applied revision %s: %d objects", o.revision, o.objects), ReasonApplied
		if len(o.notes) > 0 {
			msg, r = msg+"; "+strings.Join(o.notes, "; "), ReasonRunChanged
		}
		return []metav1.Condition{cond(meta.ReadyCondition, metav1.ConditionTrue, reason(r), msg)}
	case phaseProgressing:
		return []metav1.Condition{
			cond(meta.ReadyCondition, metav1.ConditionUnknown, reason(ReasonProgressing), o.message),
			cond(meta.ReconcilingCondition, metav1.ConditionTrue, reason(ReasonProgressing), o.message),
		}
	case phaseApplyFailed:
		return []metav1.Condition{
			cond(meta.ReadyCondition, metav1.ConditionFalse, reason(ReasonApplyFailed), o.message),
			cond(meta.ReconcilingCondition, metav1.ConditionTrue, meta.ProgressingWithRetryReason, o.message),
		}
	default:
		r := ReasonRenderFailed
		if o.phase == phasePruneGuard {
			r = ReasonPruneGuard
		}
		return []metav1.Condition{
			cond(meta.ReadyCondition, metav1.ConditionFalse, reason(r), o.message),
			cond(meta.StalledCondition, metav1.ConditionTrue, reason(r), o.message),
		}
	}
}

// setConditions replaces the Ready, Reconciling and Stalled conditions in
// *to with want, keeping transition times of unchanged statuses.
func setConditions(to *[]metav1.Condition, want []metav1.Condition) {
	for _, t := range []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition} {
		found := false
		for _, c := range want {
			if c.Type == t {
				apimeta.SetStatusCondition(to, c)
				found = true
			}
		}
		if !found {
			apimeta.RemoveStatusCondition(to, t)
		}
	}
}

// tenantConditions summarises a Tenant from its targets, unless a
// tenant-wide problem (no artifact, failed provisioning) says more: any
// stalled target stalls the Tenant, any other target that is not Ready
// keeps it Reconciling, and it is Ready when every target is.
func tenantConditions(targets []gyrev1alpha1.TargetStatus, tenantWide *targetOutcome, generation int64) []metav1.Condition {
	if tenantWide != nil {
		return targetConditions(*tenantWide, generation)
	}
	var stalled, notReady, notes []string
	var stalledReason string
	for _, t := range targets {
		switch {
		case apimeta.IsStatusConditionTrue(t.Conditions, meta.StalledCondition):
			c := apimeta.FindStatusCondition(t.Conditions, meta.StalledCondition)
			if stalledReason == "" {
				stalledReason = c.Reason
			}
			stalled = append(stalled, t.Cluster+": "+c.Message)
		case !apimeta.IsStatusConditionTrue(t.Conditions, meta.ReadyCondition):
			msg := "not reconciled yet"
			if c := apimeta.FindStatusCondition(t.Conditions, meta.ReadyCondition); c != nil {
				msg = c.Message
			}
			notReady = append(notReady, t.Cluster+": "+msg)
		default:
			if c := apimeta.FindStatusCondition(t.Conditions, meta.ReadyCondition); c.Reason == ReasonRunChanged {
				notes = append(notes, t.Cluster+": "+c.Message)
			}
		}
	}
	cond := func(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation}
	}
	switch {
	case len(stalled) > 0:
		msg := strings.Join(append(stalled, notReady...), "; ")
		return []metav1.Condition{
			cond(meta.ReadyCondition, metav1.ConditionFalse, stalledReason, msg),
			cond(meta.StalledCondition, metav1.ConditionTrue, stalledReason, msg),
		}
	case len(notReady) > 0:
		msg := strings.Join(notReady, "; ")
		return []metav1.Condition{
			cond(meta.ReadyCondition, metav1.ConditionFalse, ReasonTargetsNotReady, msg),
			cond(meta.ReconcilingCondition, metav1.ConditionTrue, meta.ProgressingReason, msg),
		}
	case len(targets) == 0:
		return []metav1.Condition{cond(meta.ReadyCondition, metav1.ConditionUnknown, ReasonProgressing, "no targets reconciled yet")}
	}
	if len(notes) > 0 {
		return []metav1.Condition{cond(meta.ReadyCondition, metav1.ConditionTrue, ReasonRunChanged,
			fmt.Sprintf("All %d targets applied; %s", len(targets), strings.Join(notes, "; ")))}
	}
	return []metav1.Condition{cond(meta.ReadyCondition, metav1.ConditionTrue, ReasonApplied,
		fmt.Sprintf("All %d targets applied", len(targets)))}
}

// summary fills the Tenant-wide status fields that follow from the
// targets: the revision they all applied (empty while they differ) and
// the number of objects in all inventories.
func summary(targets []gyrev1alpha1.TargetStatus) (revision string, objects int) {
	for i, t := range targets {
		if t.Inventory != nil {
			objects += len(t.Inventory.Entries)
		}
		if i == 0 {
			revision = t.LastAppliedRevision
		} else if revision != t.LastAppliedRevision {
			revision = ""
		}
	}
	return revision, objects
}

func isReady(conds []metav1.Condition) bool {
	return apimeta.IsStatusConditionTrue(conds, meta.ReadyCondition)
}

// targetStatus returns the status entry of the named target, or nil.
func targetStatus(t *gyrev1alpha1.Tenant, cluster string) *gyrev1alpha1.TargetStatus {
	for i := range t.Status.Targets {
		if t.Status.Targets[i].Cluster == cluster {
			return &t.Status.Targets[i]
		}
	}
	return nil
}
