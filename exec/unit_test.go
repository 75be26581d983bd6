package exec

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

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
			nodes, err := selectStages(tt.items, tt.start, tt.end)
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
	order, err := topoOrder(items("e:d", "d:b,c", "c:a", "b:a", "a"))
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
			g.Expect(podName(tt.run, tt.stage, tt.attempt)).To(Equal(tt.want))
			g.Expect(len(tt.want)).To(BeNumerically("<=", 63))
		})
	}
	t.Run("Runs and stages whose names join alike get different Pods.", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(podName("deploy", "prod-test", 1)).NotTo(Equal(podName("deploy-prod", "test", 1)))
		g.Expect(gcPodName("deploy")).NotTo(BeElementOf(podName("deploy", "gc", 1), podName("deploy", "prod-test", 1)))
	})
	t.Run("A long name is shortened with a hash, deterministically and distinctly.", func(t *testing.T) {
		g := NewWithT(t)
		a1 := podName(long, "a-very-long-stage-name", 1)
		a2 := podName(long, "a-very-long-stage-name", 2)
		g.Expect(len(a1)).To(BeNumerically("<=", 63))
		g.Expect(a1).To(HavePrefix(long))
		g.Expect(a1).To(Equal(podName(long, "a-very-long-stage-name", 1)))
		g.Expect(a1).NotTo(Equal(a2))
		g.Expect(a1).To(MatchRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`))
	})
}

func TestStateOfPod(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	grace := time.Minute
	terminated := func(name, reason string, code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}}
	}
	waiting := func(name, reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "back-off"}}}
	}
	pod := func(phase corev1.PodPhase, mutate func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: phase}}
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	tests := []struct {
		name        string
		pod         *corev1.Pod
		now         time.Time
		wantPhase   cyclonev1alpha1.StatusPhase
		wantReason  string
		wantMessage string
	}{
		{name: "A succeeded Pod succeeds the attempt.", pod: pod(corev1.PodSucceeded, nil),
			wantPhase: cyclonev1alpha1.StatusSucceeded, wantReason: ReasonCompleted},
		{name: "A running Pod runs.", pod: pod(corev1.PodRunning, nil), wantPhase: cyclonev1alpha1.StatusRunning},
		{name: "A running Pod whose coordinator saw the workload fail fails, naming the workload.", pod: pod(corev1.PodRunning, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated("main", "Error", 2), terminated("csc-co", "Error", 1),
				{Name: "o-image", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonError, wantMessage: "container main exited with code 2"},
		{name: "A running Pod whose coordinator succeeded runs on while outputs are pushed.", pod: pod(corev1.PodRunning, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated("main", "Completed", 0), terminated("csc-co", "Completed", 0)}
		}), wantPhase: cyclonev1alpha1.StatusRunning},
		{name: "A non-zero exit code fails with the container and code.", pod: pod(corev1.PodFailed, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated("main", "Error", 3)}
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonError, wantMessage: "container main exited with code 3"},
		{name: "The workload's exit code is named although the kubelet lists the coordinator, which failed with it, first.", pod: pod(corev1.PodFailed, func(p *corev1.Pod) {
			p.Spec.Containers = []corev1.Container{{Name: "main"}, {Name: coordinatorName, Env: []corev1.EnvVar{{Name: EnvWorkloadContainers, Value: "main"}}}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated(coordinatorName, "Error", 2), terminated("main", "Error", 7)}
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonError, wantMessage: "container main exited with code 7"},
		{name: "OOMKilled says the container ran out of memory.", pod: pod(corev1.PodFailed, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated("main", "OOMKilled", 137)}
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonOOMKilled, wantMessage: "ran out of memory"},
		{name: "An evicted Pod fails as evicted.", pod: pod(corev1.PodFailed, func(p *corev1.Pod) {
			p.Status.Reason, p.Status.Message = "Evicted", "node low on memory"
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonEvicted, wantMessage: "node low on memory"},
		{name: "A failed init container is named.", pod: pod(corev1.PodFailed, func(p *corev1.Pod) {
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{terminated("i-src", "Error", 2)}
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonInitFailed, wantMessage: "init container i-src exited with code 2"},
		{name: "ImagePullBackOff within the grace period waits.", now: start.Add(30 * time.Second), pod: pod(corev1.PodPending, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{waiting("main", "ImagePullBackOff")}
		}), wantPhase: cyclonev1alpha1.StatusPending, wantReason: "ImagePullBackOff"},
		{name: "ImagePullBackOff past the grace period fails.", now: start.Add(2 * time.Minute), pod: pod(corev1.PodPending, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{waiting("main", "ImagePullBackOff")}
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonImagePull, wantMessage: "container main: ImagePullBackOff"},
		{name: "A Pod being deleted before it finished fails the attempt.", pod: pod(corev1.PodRunning, func(p *corev1.Pod) {
			p.DeletionTimestamp = &metav1.Time{Time: start}
		}), wantPhase: cyclonev1alpha1.StatusFailed, wantReason: ReasonPodDeleted},
		{name: "An unscheduled Pod waits with the scheduler's reason.", pod: pod(corev1.PodPending, func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes"}}
		}), wantPhase: cyclonev1alpha1.StatusPending, wantReason: "Unschedulable", wantMessage: "0/2 nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			now := tt.now
			if now.IsZero() {
				now = start
			}
			got := stateOfPod(tt.pod, start, now, grace)
			g.Expect(got.Phase).To(Equal(tt.wantPhase))
			g.Expect(got.Reason).To(Equal(tt.wantReason))
			g.Expect(got.Message).To(ContainSubstring(tt.wantMessage))
		})
	}
}

func TestSummarize(t *testing.T) {
	now := time.Now()
	stage := func(phase cyclonev1alpha1.StatusPhase, trivial, withPod bool, deps ...string) *cyclonev1alpha1.StageStatus {
		s := &cyclonev1alpha1.StageStatus{Status: cyclonev1alpha1.Status{Phase: phase}, Trivial: trivial, Depends: deps}
		if withPod {
			s.Pod = &cyclonev1alpha1.PodInfo{Name: "p"}
		}
		return s
	}
	t.Run("A trivial failure lets dependants start and the run succeed.", func(t *testing.T) {
		g := NewWithT(t)
		st := &cyclonev1alpha1.WorkflowRunStatus{Stages: map[string]*cyclonev1alpha1.StageStatus{
			"t": stage(cyclonev1alpha1.StatusFailed, true, true),
			"c": stage(cyclonev1alpha1.StatusPending, false, false, "t"),
		}}
		g.Expect(depsMet(st.Stages, st.Stages["c"])).To(BeTrue())
		summarize(st, now)
		g.Expect(st.Overall.Phase).To(BeEmpty())
		st.Stages["c"].Status.Phase = cyclonev1alpha1.StatusSucceeded
		summarize(st, now)
		g.Expect(st.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	})
	t.Run("A blocking failure cancels unstarted stages and fails the run once nothing runs.", func(t *testing.T) {
		g := NewWithT(t)
		st := &cyclonev1alpha1.WorkflowRunStatus{Stages: map[string]*cyclonev1alpha1.StageStatus{
			"b": stage(cyclonev1alpha1.StatusFailed, false, true),
			"c": stage(cyclonev1alpha1.StatusPending, false, false, "b"),
			"d": stage(cyclonev1alpha1.StatusRunning, false, true),
		}}
		summarize(st, now)
		g.Expect(st.Stages["c"].Status.Phase).To(Equal(cyclonev1alpha1.StatusCancelled))
		g.Expect(st.Stages["c"].Status.Reason).To(Equal(ReasonUpstreamFailed))
		g.Expect(st.Overall.Phase).To(BeEmpty())
		st.Stages["d"].Status.Phase = cyclonev1alpha1.StatusSucceeded
		summarize(st, now)
		g.Expect(st.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
		g.Expect(st.Overall.Message).To(ContainSubstring("stage b failed"))
	})
	t.Run("A finished stage never changes again.", func(t *testing.T) {
		g := NewWithT(t)
		s := cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusSucceeded}
		transition(&s, cyclonev1alpha1.StatusFailed, "X", "y", now)
		g.Expect(s.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
	})
}

func TestRetryBackoff(t *testing.T) {
	g := NewWithT(t)
	c := Config{RetryBackoff: time.Second, MaxRetryBackoff: 5 * time.Second}
	g.Expect([]time.Duration{c.retryBackoff(2), c.retryBackoff(3), c.retryBackoff(4), c.retryBackoff(5)}).
		To(Equal([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second}))
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
			got, err := parseTimeout(tt.in)
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

func TestPodChanged_wakesTheEngineWhenTheWorkloadEnds(t *testing.T) {
	stagePod := func(main corev1.ContainerState) *corev1.Pod {
		return &corev1.Pod{
			Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "main"},
				{Name: coordinatorName, Env: []corev1.EnvVar{{Name: EnvWorkloadContainers, Value: "main"}}},
			}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
				{Name: "main", State: main},
				{Name: coordinatorName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}},
		}
	}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	exited := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
	tests := []struct {
		name     string
		old, new corev1.ContainerState
		want     bool
	}{
		{name: "The workload ending while the coordinator runs on, the Pod still Running, wakes the engine.", old: running, new: exited, want: true},
		{name: "A Pod whose workload runs on, unchanged, does not.", old: running, new: running, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			e := event.TypedUpdateEvent[*corev1.Pod]{ObjectOld: stagePod(tt.old), ObjectNew: stagePod(tt.new)}
			g.Expect(podChanged().Update(e)).To(Equal(tt.want))
		})
	}
}
