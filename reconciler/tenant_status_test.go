package reconciler

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/render"
)

func TestTargetConditions(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		outcome              targetOutcome
		ready                metav1.ConditionStatus
		reason               string
		reconciling, stalled bool
	}{
		{"An applied target is Ready and neither Reconciling nor Stalled.",
			targetOutcome{phase: phaseApplied, revision: "main@sha1:1", objects: 3}, metav1.ConditionTrue, ReasonApplied, false, false},
		{"A target in progress is Reconciling with Ready Unknown.",
			targetOutcome{phase: phaseProgressing, message: "Applying"}, metav1.ConditionUnknown, ReasonProgressing, true, false},
		{"A target that does not render is Stalled: only a new commit helps.",
			targetOutcome{phase: phaseRenderFailed, message: "x.yaml: bad"}, metav1.ConditionFalse, ReasonRenderFailed, false, true},
		{"A massive prune stalls the target with reason PruneGuard.",
			targetOutcome{phase: phasePruneGuard, message: "would delete"}, metav1.ConditionFalse, ReasonPruneGuard, false, true},
		{"A refused apply is retried, so the target stays Reconciling.",
			targetOutcome{phase: phaseApplyFailed, message: "denied"}, metav1.ConditionFalse, ReasonApplyFailed, true, false},
		{"An applied target with a run changed in Git is Ready with reason RunChanged.",
			targetOutcome{phase: phaseApplied, revision: "main@sha1:1", objects: 3, notes: []string{"run r changed"}}, metav1.ConditionTrue, ReasonRunChanged, false, false},
		{"A reason override replaces the phase's reason.",
			targetOutcome{phase: phaseProgressing, reason: ReasonArtifactUnavailable}, metav1.ConditionUnknown, ReasonArtifactUnavailable, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var conds []metav1.Condition
			// Start from the opposite state, to see stale conditions go.
			setConditions(&conds, []metav1.Condition{
				{Type: meta.StalledCondition, Status: metav1.ConditionTrue, Reason: "Old"},
				{Type: meta.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: "Old"},
			})
			setConditions(&conds, targetConditions(tc.outcome, 7))
			ready := apimeta.FindStatusCondition(conds, meta.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(tc.ready))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			g.Expect(ready.ObservedGeneration).To(Equal(int64(7)))
			g.Expect(apimeta.IsStatusConditionTrue(conds, meta.ReconcilingCondition)).To(Equal(tc.reconciling))
			g.Expect(apimeta.IsStatusConditionTrue(conds, meta.StalledCondition)).To(Equal(tc.stalled))
		})
	}
}

func TestTenantConditions(t *testing.T) {
	target := func(name string, o targetOutcome) gyrev1alpha1.TargetStatus {
		st := gyrev1alpha1.TargetStatus{Cluster: name, LastAppliedRevision: o.revision}
		setConditions(&st.Conditions, targetConditions(o, 1))
		return st
	}
	ok := targetOutcome{phase: phaseApplied, revision: "r1"}
	for _, tc := range []struct {
		name                 string
		targets              []gyrev1alpha1.TargetStatus
		tenantWide           *targetOutcome
		ready                metav1.ConditionStatus
		reason               string
		reconciling, stalled bool
	}{
		{"A tenant whose targets are all applied is Ready.",
			[]gyrev1alpha1.TargetStatus{target("a", ok), target("b", ok)}, nil, metav1.ConditionTrue, ReasonApplied, false, false},
		{"One stalled target stalls the tenant with that target's reason.",
			[]gyrev1alpha1.TargetStatus{target("a", ok), target("b", targetOutcome{phase: phasePruneGuard, message: "m"})}, nil, metav1.ConditionFalse, ReasonPruneGuard, false, true},
		{"A target being retried keeps the tenant Reconciling.",
			[]gyrev1alpha1.TargetStatus{target("a", ok), target("b", targetOutcome{phase: phaseApplyFailed, message: "m"})}, nil, metav1.ConditionFalse, ReasonTargetsNotReady, true, false},
		{"A tenant with a run changed in Git stays Ready, with reason RunChanged.",
			[]gyrev1alpha1.TargetStatus{target("a", ok), target("b", targetOutcome{phase: phaseApplied, revision: "r1", notes: []string{"run r changed"}})}, nil, metav1.ConditionTrue, ReasonRunChanged, false, false},
		{"A tenant-wide problem wins over the targets.",
			[]gyrev1alpha1.TargetStatus{target("a", ok)}, waiting("no artifact"), metav1.ConditionUnknown, ReasonArtifactUnavailable, true, false},
		{"A tenant without reconciled targets is not Ready yet.",
			nil, nil, metav1.ConditionUnknown, ReasonProgressing, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			conds := tenantConditions(tc.targets, tc.tenantWide, 1)
			ready := apimeta.FindStatusCondition(conds, meta.ReadyCondition)
			g.Expect(ready.Status).To(Equal(tc.ready))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			g.Expect(apimeta.IsStatusConditionTrue(conds, meta.ReconcilingCondition)).To(Equal(tc.reconciling))
			g.Expect(apimeta.IsStatusConditionTrue(conds, meta.StalledCondition)).To(Equal(tc.stalled))
		})
	}
}

func TestSummary(t *testing.T) {
	g := NewWithT(t)
	inv := func(n int) *gyrev1alpha1.Inventory {
		return &gyrev1alpha1.Inventory{Entries: make([]gyrev1alpha1.InventoryEntry, n)}
	}
	rev, n := summary([]gyrev1alpha1.TargetStatus{{LastAppliedRevision: "r1", Inventory: inv(2)}, {LastAppliedRevision: "r1", Inventory: inv(3)}})
	g.Expect(rev).To(Equal("r1"))
	g.Expect(n).To(Equal(5))
	rev, _ = summary([]gyrev1alpha1.TargetStatus{{LastAppliedRevision: "r1"}, {LastAppliedRevision: "r2"}})
	g.Expect(rev).To(BeEmpty(), "targets at different revisions have no common revision")
}

func TestInventory(t *testing.T) {
	for _, tc := range []struct {
		name         string
		stale, total int
		mass         bool
	}{
		{"Deleting half of an inventory is allowed.", 2, 4, false},
		{"Deleting more than half of an inventory is a mass prune.", 3, 4, true},
		{"Emptying a one-object inventory is a mass prune.", 1, 1, true},
		{"An empty inventory never mass-prunes.", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(massPrune(tc.stale, tc.total)).To(Equal(tc.mass))
		})
	}
	t.Run("Entries round-trip through objects and stale entries are the difference.", func(t *testing.T) {
		g := NewWithT(t)
		old := &gyrev1alpha1.Inventory{Entries: []gyrev1alpha1.InventoryEntry{
			{ID: "ns_a_cyclone.dev_Stage", Version: "v1alpha1"}, {ID: "ns_b__ConfigMap", Version: "v1"},
		}}
		next := &gyrev1alpha1.Inventory{Entries: []gyrev1alpha1.InventoryEntry{{ID: "ns_a_cyclone.dev_Stage", Version: "v1alpha1"}}}
		stale := staleEntries(old, next)
		g.Expect(stale).To(Equal([]gyrev1alpha1.InventoryEntry{{ID: "ns_b__ConfigMap", Version: "v1"}}))
		o, err := entryObject(stale[0])
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(o.GetAPIVersion()).To(Equal("v1"))
		g.Expect(o.GetKind()).To(Equal("ConfigMap"))
		g.Expect(newInventory([]*unstructured.Unstructured{o})).To(Equal(&gyrev1alpha1.Inventory{Entries: stale}))
	})
}

// TestTenantTestdata_renders keeps the repository the envtest commits to
// valid: each target renders its three objects, suffixed.
func TestTenantTestdata_renders(t *testing.T) {
	for _, target := range []render.Target{{Tenant: "alpha", Cluster: "one"}, {Tenant: "beta", Cluster: "two"}} {
		t.Run(target.String()+" renders.", func(t *testing.T) {
			g := NewWithT(t)
			res, err := render.Render(context.Background(), "testdata/tenant-repo", target, render.Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Err()).NotTo(HaveOccurred())
			var names []string
			for _, o := range res.Objects {
				names = append(names, o.GetKind()+"/"+o.GetName())
			}
			s := "-" + target.Cluster
			g.Expect(names).To(ConsistOf("ConfigMap/settings"+s, "Stage/build"+s, "Stage/test"+s))
		})
	}
}
