package template

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

func TestResolveVariables(t *testing.T) {
	now := time.Date(2026, 5, 24, 11, 10, 13, 0, time.UTC)
	random := func(n int) string { return strings.Repeat("x", n) }
	v := func(name, value string) cyclonev1alpha1.GlobalVariable {
		return cyclonev1alpha1.GlobalVariable{Name: name, Value: value}
	}
	tests := []struct {
		name          string
		workflow, run []cyclonev1alpha1.GlobalVariable
		want          []cyclonev1alpha1.GlobalVariable
	}{
		{name: "A literal is kept.", workflow: []cyclonev1alpha1.GlobalVariable{v("A", "a")}, want: []cyclonev1alpha1.GlobalVariable{v("A", "a")}},
		{name: "The run's value wins over the Workflow's.", workflow: []cyclonev1alpha1.GlobalVariable{v("A", "a"), v("B", "b")},
			run: []cyclonev1alpha1.GlobalVariable{v("A", "run")}, want: []cyclonev1alpha1.GlobalVariable{v("A", "run"), v("B", "b")}},
		{name: "Random makes N characters.", workflow: []cyclonev1alpha1.GlobalVariable{v("R", "$(random:5)")}, want: []cyclonev1alpha1.GlobalVariable{v("R", "xxxxx")}},
		{name: "Timenow takes a named layout.", workflow: []cyclonev1alpha1.GlobalVariable{v("T", "$(timenow:RFC3339)")}, want: []cyclonev1alpha1.GlobalVariable{v("T", "2026-05-24T11:10:13Z")}},
		{name: "Timenow takes a Go layout.", workflow: []cyclonev1alpha1.GlobalVariable{v("T", "$(timenow:20060102150405)")}, want: []cyclonev1alpha1.GlobalVariable{v("T", "20260524111013")}},
		{name: "Timenow without a layout is a Unix timestamp.", workflow: []cyclonev1alpha1.GlobalVariable{v("T", "$(timenow:)")}, want: []cyclonev1alpha1.GlobalVariable{v("T", "1779621013")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(ResolveVariables(tt.workflow, tt.run, now, random)).To(Equal(tt.want))
		})
	}
}

func TestSubstitution(t *testing.T) {
	g := NewWithT(t)
	vars := map[string]string{"TAG": "v1"}
	g.Expect(SubstituteVariables("img:${variables.TAG}-${variables.NOPE}", vars)).To(Equal("img:v1-${variables.NOPE}"))
	g.Expect(SubstituteArguments("run {{ cmd }} {{x}} {{ y }}", map[string]string{"cmd": "make", "x": "1"})).To(Equal("run make 1 {{ y }}"))
	g.Expect(SubstituteArguments(`sh -c "{{{ cmd }}}" {{{nope}}}`, map[string]string{"cmd": "make && make test"})).To(Equal(`sh -c "make && make test" {{{nope}}}`),
		"mustache's triple braces, as Cyclone's templates use them")
	names, values := Parameters(vars,
		[]cyclonev1alpha1.ParameterItem{{Name: "IMAGE", Value: ptr.To("app:${variables.TAG}")}, {Name: "URL", Value: ptr.To("u")}},
		[]cyclonev1alpha1.ParameterItem{{Name: "URL", Value: ptr.To("override")}, {Name: "UNSET"}})
	g.Expect(names).To(Equal([]string{"IMAGE", "URL"}))
	g.Expect(values).To(Equal(map[string]string{"IMAGE": "app:v1", "URL": "override"}))
}

func TestGenerate_timeLayouts(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 11, 29, 12, 30, 5, 0, time.UTC)
	g.Expect(Generate("$(timenow:Stamp)", now, nil)).To(Equal("Nov 29 12:30:05"))
	g.Expect(Generate("$(timenow:RFC3339)", now, nil)).To(Equal("2026-11-29T12:30:05Z"))
	g.Expect(Generate("$(timenow:20060102)", now, nil)).To(Equal("20261129"), "any other name is a Go layout")
	g.Expect(Generate("$(timenow:)", now, nil)).To(Equal("1795955405"), "no layout: Unix seconds")
}

func TestArguments(t *testing.T) {
	run := &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{UID: "uid-1", CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
		Spec: cyclonev1alpha1.WorkflowRunSpec{StageParams: []cyclonev1alpha1.ParameterConfig{
			{Name: "build", Parameters: []cyclonev1alpha1.ParameterItem{{Name: "target", Value: ptr.To("release-${variables.TAG}")}}}}}}
	defaults := []cyclonev1alpha1.ArgumentValue{
		{Name: "target", Value: ptr.To("debug")},
		{Name: "cmd", Value: ptr.To("make {{ target }} TAG={{ tag }}")},
		{Name: "tag", Value: ptr.To("$(random:6)")},
		{Name: "day", Value: ptr.To("$(timenow:20060102)")},
	}
	args := func(attempt int32) map[string]string {
		out, err := Arguments(defaults, run.Spec.StageParams, "build", map[string]string{"TAG": "v1"}, AttemptSeed(run, "build", attempt),
			func(map[string]string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	g := NewWithT(t)
	got := args(1)
	g.Expect(got["target"]).To(Equal("release-v1"), "the run's parameter wins, with variables substituted")
	g.Expect(got["day"]).To(Equal("20260102"), "time is the run's creation time")
	g.Expect(got["tag"]).To(MatchRegexp(`^[a-z0-9]{6}$`))
	g.Expect(got["cmd"]).To(Equal("make release-v1 TAG="+got["tag"]), "arguments use each other")
	g.Expect(args(1)).To(Equal(got), "the same attempt draws the same values")
	g.Expect(args(2)["tag"]).NotTo(Equal(got["tag"]), "each attempt draws its own")
}
