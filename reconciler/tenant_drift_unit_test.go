package reconciler

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/gyreops/gyre/internal/apply"
)

// TestDriftTracker_keepsWhatItAppliedExactly: the memo keeps a full
// reconcile's objects compactly, and gives back exactly those objects,
// the edited ones alone when only they drifted, and knows each by the
// digest it was applied with.
func TestDriftTracker_keepsWhatItAppliedExactly(t *testing.T) {
	g := NewWithT(t)
	stage := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cyclone.dev/v1alpha1", "kind": "Stage",
		"metadata": map[string]any{"name": "build", "namespace": "cyclone-a", "labels": map[string]any{"gyre.dev/tenant": "a"}},
		"spec":     map[string]any{"pod": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "main", "image": "golang:1.27"}}}}},
	}}
	config := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": "cyclone-a"},
		"data":     map[string]any{"key": "value"},
	}}
	for _, o := range []*unstructured.Unstructured{stage, config} {
		g.Expect(apply.Stamp(o)).To(Succeed())
	}
	memo, err := newMemoTarget([]*unstructured.Unstructured{stage, config})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(memo.wants).To(Equal([]apply.Want{apply.WantOf(stage), apply.WantOf(config)}))
	back, err := memo.objects()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back).To(Equal([]*unstructured.Unstructured{stage, config}))

	d := newDriftTracker()
	now := time.Now()
	d.remember("a", 1, "rev", now, map[string]*memoTarget{"one": memo})
	g.Expect(d.rendered("a", 1, "rev")).To(HaveKeyWithValue("one", memo))
	g.Expect(d.rendered("a", 2, "rev")).To(BeNil(), "another generation renders again")
	d.markDirty("a", inventoryID("cyclone-a", "settings", "", "ConfigMap"))
	dirty, _, ok := d.takeDirty("a", 1, "rev", now, time.Hour)
	g.Expect(ok).To(BeTrue())
	g.Expect(dirty).To(Equal(map[string][]*unstructured.Unstructured{"one": {config}}))
}
