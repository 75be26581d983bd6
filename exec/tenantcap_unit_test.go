package exec

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// TestTenantLoad_wakesOneWaiterPerSlotInLine: a freed slot wakes the run
// held back longest, one per slot; a woken run that finds the slot taken
// keeps its place; a run whose stages end with it wakes as many runs as
// it held slots.
func TestTenantLoad_wakesOneWaiterPerSlotInLine(t *testing.T) {
	g := NewWithT(t)
	l := newTenantLoad()
	run := func(name string) *cyclonev1alpha1.WorkflowRun {
		return &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-t", Name: name, UID: types.UID(name)}}
	}
	// running has n stages with Pods, not finished.
	running := func(n int) *cyclonev1alpha1.WorkflowRunStatus {
		st := &cyclonev1alpha1.WorkflowRunStatus{Stages: map[string]*cyclonev1alpha1.StageStatus{}}
		for i := range n {
			st.Stages[string(rune('a'+i))] = &cyclonev1alpha1.StageStatus{Pod: &cyclonev1alpha1.PodInfo{}}
		}
		return st
	}
	woken := func() []string {
		var names []string
		for {
			select {
			case e := <-l.wake:
				names = append(names, e.Object.GetName())
			default:
				return names
			}
		}
	}
	a, b, c, d := run("a"), run("b"), run("c"), run("d")

	l.record(a, running(2), false)
	l.record(b, running(0), true)
	l.record(c, running(0), true)
	l.record(d, running(0), true)
	g.Expect(woken()).To(BeEmpty(), "no slot freed yet")

	l.record(a, running(1), false)
	g.Expect(woken()).To(Equal([]string{"b"}), "one slot: the run held back longest")

	l.record(b, running(0), true) // another run took the slot first
	l.record(a, running(0), false)
	g.Expect(woken()).To(Equal([]string{"b"}), "b kept its place")

	l.record(b, running(1), false)
	g.Expect(woken()).To(BeEmpty(), "b took the slot: nothing freed")

	l.forget(types.NamespacedName{Namespace: b.Namespace, Name: b.Name})
	g.Expect(woken()).To(Equal([]string{"c"}), "a deleted run frees its slot")

	l.record(c, running(0), false) // c gave up: stopped, say
	l.record(a, running(2), false)
	l.record(a, &cyclonev1alpha1.WorkflowRunStatus{Overall: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusSucceeded}, Stages: running(2).Stages}, false)
	g.Expect(woken()).To(Equal([]string{"d"}), "a finished run frees its slots; c is no longer in line")
}
