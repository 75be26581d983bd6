package convention

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

func items(spec ...string) []cyclonev1alpha1.StageItem {
	// "b:a,c" is stage b depending on a and c.
	var out []cyclonev1alpha1.StageItem
	for _, s := range spec {
		name, deps, _ := strings.Cut(s, ":")
		it := cyclonev1alpha1.StageItem{Name: name}
		if deps != "" {
			it.Depends = strings.Split(deps, ",")
		}
		out = append(out, it)
	}
	return out
}

func TestSelectStages(t *testing.T) {
	diamond := items("a", "b:a", "c:a", "d:b,c", "e:d")
	tests := []struct {
		name       string
		items      []cyclonev1alpha1.StageItem
		start, end []string
		want       map[string][]string
		wantErr    string
	}{
		{name: "A run without limits runs every stage.", items: diamond,
			want: map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"d"}}},
		{name: "Start stages keep what follows them and drop skipped dependencies.", items: diamond, start: []string{"b"},
			want: map[string][]string{"b": nil, "d": {"b"}, "e": {"d"}}},
		{name: "End stages keep what precedes them.", items: diamond, end: []string{"c"},
			want: map[string][]string{"a": nil, "c": {"a"}}},
		{name: "Start and end stages keep what lies between.", items: diamond, start: []string{"b"}, end: []string{"d"},
			want: map[string][]string{"b": nil, "d": {"b"}}},
		{name: "A cycle is refused.", items: items("a:c", "b:a", "c:b"), wantErr: "cycle"},
		{name: "An unknown dependency is refused.", items: items("a:x"), wantErr: `unknown stage "x"`},
		{name: "A stage listed twice is refused.", items: items("a", "a"), wantErr: "twice"},
		{name: "An unknown start stage is refused.", items: diamond, start: []string{"zz"}, wantErr: `unknown stage "zz"`},
		{name: "Disjoint start and end stages select nothing and are refused.", items: diamond, start: []string{"b"}, end: []string{"c"}, wantErr: "no stage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			nodes, err := SelectStages(tt.items, tt.start, tt.end)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			got := map[string][]string{}
			for _, n := range nodes {
				got[n.Name] = n.Depends
			}
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

func TestTopoOrder(t *testing.T) {
	g := NewWithT(t)
	order, err := TopoOrder(items("e:d", "d:b,c", "c:a", "b:a", "a"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(order).To(Equal([]string{"a", "c", "b", "d", "e"}))
}

func TestPodName(t *testing.T) {
	long := strings.Repeat("r", 40)
	tests := []struct {
		name, run, stage string
		attempt          int32
		want             string
	}{
		{name: "A short name is the run, the stage, the attempt and a hash of the run and the stage.", run: "run", stage: "build", attempt: 1,
			want: "run-build-1-" + hashOf("run/build")},
		{name: "A name of exactly 63 characters is kept.", run: strings.Repeat("r", 47), stage: "stage", attempt: 2,
			want: strings.Repeat("r", 47) + "-stage-2-" + hashOf(strings.Repeat("r", 47)+"/stage")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(PodName(tt.run, tt.stage, tt.attempt)).To(Equal(tt.want))
			g.Expect(len(tt.want)).To(BeNumerically("<=", 63))
		})
	}
	t.Run("Runs and stages whose names join alike get different Pods.", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(PodName("deploy", "prod-test", 1)).NotTo(Equal(PodName("deploy-prod", "test", 1)))
		g.Expect(GCPodName("deploy")).NotTo(BeElementOf(PodName("deploy", "gc", 1), PodName("deploy", "prod-test", 1)))
	})
	t.Run("A long name is shortened with a hash, deterministically and distinctly.", func(t *testing.T) {
		g := NewWithT(t)
		a1 := PodName(long, "a-very-long-stage-name", 1)
		a2 := PodName(long, "a-very-long-stage-name", 2)
		g.Expect(len(a1)).To(BeNumerically("<=", 63))
		g.Expect(a1).To(HavePrefix(long))
		g.Expect(a1).To(Equal(PodName(long, "a-very-long-stage-name", 1)))
		g.Expect(a1).NotTo(Equal(a2))
		g.Expect(a1).To(MatchRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`))
	})
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "", want: 0},
		{in: "30min", want: 30 * time.Minute},
		{in: "2hour", want: 2 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1Hour30Min", want: 90 * time.Minute},
		{in: "45second", want: 45 * time.Second},
		{in: "90s", want: 90 * time.Second},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "-5m", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "30", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseTimeout(tt.in)
			if tt.wantErr {
				g.Expect(err).To(HaveOccurred())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

// hashOf is the hash a Pod name ends with, computed here apart from
// podName so that a change of the name scheme shows.
func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:5]
}

func TestNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Namespace("shop")).To(Equal("cyclone-shop"))
	g.Expect(WorkerNamespace("shop")).To(Equal("cyclone-shop-worker"))
	g.Expect(PVCName("shop")).To(Equal("cyclone-pvc-shop"))
	for ns, want := range map[string]string{"cyclone-shop": "shop", "cyclone-": "", "default": ""} {
		tenant, ok := TenantOf(ns)
		g.Expect(ok).To(Equal(want != ""), ns)
		if ok {
			g.Expect(tenant).To(Equal(want))
		}
	}
	tenant, ok := TenantOf(Namespace("a-b"))
	g.Expect(ok).To(BeTrue())
	g.Expect(tenant).To(Equal("a-b"))
}

func TestFinished(t *testing.T) {
	g := NewWithT(t)
	for p, want := range map[cyclonev1alpha1.StatusPhase]bool{
		cyclonev1alpha1.StatusSucceeded: true, cyclonev1alpha1.StatusFailed: true, cyclonev1alpha1.StatusCancelled: true,
		cyclonev1alpha1.StatusRunning: false, cyclonev1alpha1.StatusPending: false, "": false,
	} {
		g.Expect(Finished(p)).To(Equal(want), string(p))
		g.Expect(RunFinished(&cyclonev1alpha1.WorkflowRun{Status: cyclonev1alpha1.WorkflowRunStatus{Overall: cyclonev1alpha1.Status{Phase: p}}})).To(Equal(want))
	}
}

func TestRunName(t *testing.T) {
	long := strings.Repeat("t", 70)
	tests := []struct {
		name, prefix, suffix, want string
	}{
		{name: "A short trigger and suffix are joined with a dash.", prefix: "nightly", suffix: "29456", want: "nightly-29456"},
		{name: "No suffix leaves a short name as it is.", prefix: "nightly", want: "nightly"},
		{name: "A long trigger is cut and hashed, and the suffix is kept whole.", prefix: long, suffix: "29456",
			want: strings.Repeat("t", 63-8-1-6) + "-" + Hash(long, 8) + "-29456"},
		{name: "A long trigger without a suffix is cut and hashed.", prefix: long,
			want: strings.Repeat("t", 63-8-1) + "-" + Hash(long, 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := RunName(tt.prefix, tt.suffix)
			g.Expect(got).To(Equal(tt.want))
			g.Expect(len(got)).To(BeNumerically("<=", MaxNameLength))
		})
	}
}

func TestCycle(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Cycle(items("a", "b:a"))).To(BeNil())
	g.Expect(Cycle(items("a:c", "b:a", "c:b"))).To(Equal([]string{"a", "c", "b", "a"}))
	g.Expect(Ancestors(items("a", "b:a", "c:b"))["c"]).To(Equal(map[string]bool{"a": true, "b": true}))
}

func TestStagePodContract(t *testing.T) {
	g := NewWithT(t)
	g.Expect(StagingDir("run-build-1-abcde")).To(Equal("staging/run-build-1-abcde"))
	g.Expect(ArtifactDir("build", "jar")).To(Equal("artifacts/build/jar"))
}
