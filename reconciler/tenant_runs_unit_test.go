package reconciler

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/render"
)

func testRun(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cyclone.dev/v1alpha1", "kind": "WorkflowRun",
		"metadata": map[string]any{"name": name, "namespace": "cyclone-t"},
		"spec":     spec,
	}}
}

func TestRunDigest(t *testing.T) {
	g := NewWithT(t)
	a, err := runDigest(testRun("r", map[string]any{"workflowRef": map[string]any{"name": "ci"}, "timeout": "1h"}))
	g.Expect(err).NotTo(HaveOccurred())
	b, err := runDigest(testRun("other", map[string]any{"timeout": "1h", "workflowRef": map[string]any{"name": "ci"}}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a).To(Equal(b), "the digest is the spec's, whatever its key order and the run's name")
	g.Expect(a).To(MatchRegexp("^[0-9a-f]{16}$"))
	c, err := runDigest(testRun("r", map[string]any{"workflowRef": map[string]any{"name": "ci"}, "timeout": "2h"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c).NotTo(Equal(a))
}

func TestPlanRuns(t *testing.T) {
	spec := map[string]any{"workflowRef": map[string]any{"name": "ci"}}
	digest, _ := runDigest(testRun("r", spec))
	id := func(name string) string { return inventoryID("cyclone-t", name, "cyclone.dev", "WorkflowRun") }
	stage := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cyclone.dev/v1alpha1", "kind": "Stage", "metadata": map[string]any{"name": "s", "namespace": "cyclone-t"}}}
	for _, tc := range []struct {
		name      string
		status    gyrev1alpha1.TargetStatus
		run       *unstructured.Unstructured
		applied   bool
		remembers string
		note      string
	}{
		{"A run not started yet is applied and then remembered.",
			gyrev1alpha1.TargetStatus{}, testRun("new", spec), true, digest, ""},
		{"A started run with the same spec is not applied again.",
			gyrev1alpha1.TargetStatus{StartedRuns: []gyrev1alpha1.StartedRun{{ID: id("old"), Digest: digest}}}, testRun("old", spec), false, digest, ""},
		{"A started run whose spec changed is not applied, keeps its first digest and is noted.",
			gyrev1alpha1.TargetStatus{StartedRuns: []gyrev1alpha1.StartedRun{{ID: id("old"), Digest: "0123456789abcdef"}}}, testRun("old", spec), false, "0123456789abcdef",
			"WorkflowRun cyclone-t/old under tenants/t already ran and its spec changed in Git since; it is not run again: give the run a new name to run it"},
		{"A run the inventory lists from before runs were remembered counts as started.",
			gyrev1alpha1.TargetStatus{Inventory: &gyrev1alpha1.Inventory{Entries: []gyrev1alpha1.InventoryEntry{{ID: id("old"), Version: "v1alpha1"}}}}, testRun("old", spec), false, digest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p, err := planRuns([]*unstructured.Unstructured{stage, tc.run}, &tc.status, sourceDir(render.Target{Tenant: "t"}))
			g.Expect(err).NotTo(HaveOccurred())
			if tc.applied {
				g.Expect(p.apply).To(ConsistOf(stage, tc.run))
			} else {
				g.Expect(p.apply).To(ConsistOf(stage))
			}
			g.Expect(p.started(nil, nil)).To(Equal([]gyrev1alpha1.StartedRun{{ID: id(tc.run.GetName()), Digest: tc.remembers}}))
			if tc.note == "" {
				g.Expect(p.notes).To(BeEmpty())
			} else {
				g.Expect(p.notes).To(ConsistOf(tc.note))
			}
		})
	}
}

func TestPlanRuns_capsTheRunsItRemembers(t *testing.T) {
	g := NewWithT(t)
	st := gyrev1alpha1.TargetStatus{}
	for i := range maxStartedRuns {
		st.StartedRuns = append(st.StartedRuns, gyrev1alpha1.StartedRun{ID: inventoryID("cyclone-t", fmt.Sprintf("run-%d", i), "cyclone.dev", "WorkflowRun"), Digest: "x"})
	}
	p, err := planRuns([]*unstructured.Unstructured{testRun("one-too-many", map[string]any{})}, &st, "tenants/t")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.apply).To(BeEmpty(), "a run that could not be remembered is not created")
	g.Expect(p.notes).To(ConsistOf(ContainSubstring("WorkflowRun cyclone-t/one-too-many under tenants/t not created")))
}

func TestWithoutUnstarted(t *testing.T) {
	g := NewWithT(t)
	spec := map[string]any{"workflowRef": map[string]any{"name": "ci"}}
	p, err := planRuns([]*unstructured.Unstructured{testRun("a", spec), testRun("b", spec)}, &gyrev1alpha1.TargetStatus{}, "tenants/t")
	g.Expect(err).NotTo(HaveOccurred())
	inv := newInventory(p.apply)
	started := []gyrev1alpha1.StartedRun{{ID: inventoryID("cyclone-t", "a", "cyclone.dev", "WorkflowRun")}}
	got := withoutUnstarted(inv, p, started)
	g.Expect(got.Entries).To(ConsistOf(HaveField("ID", started[0].ID)),
		"a run a failed apply did not create stays out of the inventory, or the next reconcile would take it for started")
}
