package web

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    time.Duration
		want string
	}{
		{"A stage that took no time shows 0s.", 0, "0s"},
		{"Less than half a second rounds down to 0s.", 400 * time.Millisecond, "0s"},
		{"Half a second or more rounds up to the next second.", 1500 * time.Millisecond, "2s"},
		{"Under a minute shows seconds only.", 59 * time.Second, "59s"},
		{"A minute and a few seconds pads the seconds.", 3*time.Minute + 7*time.Second, "3m07s"},
		{"Seconds that round up to a minute carry over.", 59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h00m"},
		{"Hours show minutes, not seconds.", 2*time.Hour + 5*time.Minute + 30*time.Second, "2h05m"},
		{"Days show hours, not minutes.", 76*time.Hour + 59*time.Minute, "3d04h"},
		{"A negative duration, from clocks that disagree, is 0s.", -5 * time.Second, "0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Duration(tc.d)).To(Equal(tc.want))
		})
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		t    time.Time
		want string
	}{
		{"No time has no age.", time.Time{}, ""},
		{"A time 90 seconds ago is 1m30s old.", now.Add(-90 * time.Second), "1m30s"},
		{"A time in the future, from a clock ahead of ours, is 0s old.", now.Add(time.Minute), "0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Age(tc.t, now)).To(Equal(tc.want))
		})
	}
}

func TestLayoutDAG(t *testing.T) {
	g := NewWithT(t)
	d := layoutDAG([]dagStage{
		{Name: "build", Phase: "Succeeded"},
		{Name: "deploy", Depends: []string{"test", "lint"}, Phase: "Pending"},
		{Name: "lint", Depends: []string{"build"}, Phase: "Failed"},
		{Name: "test", Depends: []string{"build", "skipped-by-startStages"}, Phase: "Running"},
	})
	type placed struct {
		Name, Class string
		X, Y        int
	}
	var nodes []placed
	for _, n := range d.Nodes {
		nodes = append(nodes, placed{n.Name, n.Class, n.X, n.Y})
	}
	g.Expect(nodes).To(Equal([]placed{
		{"build", "node phase-succeeded", margin, margin},
		{"lint", "node phase-failed", margin + nodeWidth + colGap, margin},
		{"test", "node phase-running", margin + nodeWidth + colGap, margin + nodeHeight + rowGap},
		{"deploy", "node phase-pending", margin + 2*(nodeWidth+colGap), margin},
	}), "a stage sits one column after its last dependency; a column is sorted by name")
	var edges []string
	for _, e := range d.Edges {
		edges = append(edges, e.From+">"+e.To)
	}
	g.Expect(edges).To(Equal([]string{"build>lint", "build>test", "lint>deploy", "test>deploy"}),
		"an edge per dependency the run has; none to a stage it left out")
	g.Expect(d.Width).To(Equal(2*margin + 3*nodeWidth + 2*colGap))
	g.Expect(d.Height).To(Equal(2*margin + 2*nodeHeight + rowGap))
}

func TestLayoutDAG_aCycleStillDraws(t *testing.T) {
	g := NewWithT(t)
	d := layoutDAG([]dagStage{{Name: "a", Depends: []string{"b"}}, {Name: "b", Depends: []string{"a"}}})
	g.Expect(d.Nodes).To(HaveLen(2))
}

func TestSortRuns(t *testing.T) {
	g := NewWithT(t)
	at := func(ns, name string, sec int) *cyclonev1alpha1.WorkflowRun {
		return &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(time.Date(2026, 3, 1, 12, 0, sec, 0, time.UTC)),
		}}
	}
	runs := []*cyclonev1alpha1.WorkflowRun{
		at("cyclone-b", "ci-1", 0), at("cyclone-a", "ci-2", 5), at("cyclone-b", "ci-2", 5), at("cyclone-a", "ci-1", 0), at("cyclone-a", "ci-3", 9),
	}
	sortRuns(runs)
	var got []string
	for _, r := range runs {
		got = append(got, r.Namespace+"/"+r.Name)
	}
	g.Expect(got).To(Equal([]string{"cyclone-a/ci-3", "cyclone-a/ci-2", "cyclone-b/ci-2", "cyclone-a/ci-1", "cyclone-b/ci-1"}),
		"newest first; runs of the same second by namespace, then name")
}
