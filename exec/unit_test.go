package exec

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
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
			p.Spec.Containers = []corev1.Container{{Name: "main"}, {Name: podbuild.CoordinatorName, Env: []corev1.EnvVar{{Name: convention.EnvWorkloadContainers, Value: "main"}}}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated(podbuild.CoordinatorName, "Error", 2), terminated("main", "Error", 7)}
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

func TestPodChanged_wakesTheEngineWhenTheWorkloadEnds(t *testing.T) {
	stagePod := func(main corev1.ContainerState) *corev1.Pod {
		return &corev1.Pod{
			Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "main"},
				{Name: podbuild.CoordinatorName, Env: []corev1.EnvVar{{Name: convention.EnvWorkloadContainers, Value: "main"}}},
			}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
				{Name: "main", State: main},
				{Name: podbuild.CoordinatorName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
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

// TestPodExpectations: a Pod the engine created is not created again by a
// round that runs before the cache shows it, and is again once the cache
// showed its deletion, once the wait ran out, or for another run of the
// same name.
func TestPodExpectations(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := types.NamespacedName{Namespace: "cyclone-t", Name: "r1"}
	pod := types.NamespacedName{Namespace: "cyclone-t-worker", Name: "r1-a-1"}
	for _, tc := range []struct {
		name  string
		after func(*podExpectations)
		uid   types.UID
		at    time.Time
		want  bool
	}{
		{"Created and not in the cache yet: a second round leaves it.", nil, "u1", now.Add(time.Second), true},
		{"A run of the same name made again has Pods of its own.", nil, "u2", now.Add(time.Second), false},
		{"Shown by the cache: the cache speaks for it.", func(e *podExpectations) { e.observed(pod) }, "u1", now.Add(time.Second), false},
		{"Out of the cache for the whole wait: created again.", nil, "u1", now.Add(expectationTimeout), false},
		{"Its run finished or went.", func(e *podExpectations) { e.forgetRun(run) }, "u1", now.Add(time.Second), false},
		{"Another run forgotten: still expected.", func(e *podExpectations) { e.forgetRun(types.NamespacedName{Namespace: "cyclone-t", Name: "r2"}) }, "u1", now.Add(time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var e podExpectations
			g.Expect(e.pending("u1", pod, now)).To(BeFalse(), "nothing created yet")
			e.created(run, "u1", pod, now)
			if tc.after != nil {
				tc.after(&e)
			}
			g.Expect(e.pending(tc.uid, pod, tc.at)).To(Equal(tc.want))
		})
	}
}

// TestGCPace: a run's end waits for its GC Pod only while GC Pods lately
// finished within the wait; a few quick ones bring the wait back, one slow
// one among quick ones does not take it away.
func TestGCPace(t *testing.T) {
	g := NewWithT(t)
	var p gcPace
	g.Expect(p.within(time.Second)).To(BeTrue(), "no GC Pod seen yet: try")
	p.observe(300 * time.Millisecond)
	g.Expect(p.within(time.Second)).To(BeTrue())
	p.observe(3 * time.Second)
	g.Expect(p.within(time.Second)).To(BeTrue(), "one slow GC Pod among quick ones")
	for range 3 {
		p.observe(3 * time.Second)
	}
	g.Expect(p.within(time.Second)).To(BeFalse(), "GC Pods lately slower than the wait")
	for range 6 {
		p.observe(200 * time.Millisecond)
	}
	g.Expect(p.within(time.Second)).To(BeTrue(), "quick again")
}

func TestReportDelay_stretchesWithTheRunsInProgress(t *testing.T) {
	tests := []struct {
		name       string
		base, max  time.Duration
		inProgress int
		want       time.Duration
	}{
		{name: "A quiet engine reports after the base delay.", base: time.Second, max: 5 * time.Second, inProgress: runsPerReportDelay - 1, want: time.Second},
		{name: "Every runsPerReportDelay runs add the base delay again.", base: time.Second, max: 5 * time.Second, inProgress: 2 * runsPerReportDelay, want: 3 * time.Second},
		{name: "A busy engine waits the maximum at most.", base: time.Second, max: 5 * time.Second, inProgress: 40 * runsPerReportDelay, want: 5 * time.Second},
		{name: "A maximum below the base keeps the base.", base: time.Minute, max: 5 * time.Second, inProgress: 40 * runsPerReportDelay, want: time.Minute},
		{name: "A negative base reports every change at once, however busy.", base: -1, max: 5 * time.Second, inProgress: 40 * runsPerReportDelay, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Engine{cfg: Config{RunningReportDelay: tt.base, MaxRunningReportDelay: tt.max}}
			for i := range tt.inProgress {
				r.inProgress.add(types.NamespacedName{Namespace: "t", Name: fmt.Sprint(i)})
			}
			r.inProgress.add(types.NamespacedName{Namespace: "t", Name: "0"}) // counted once
			NewWithT(t).Expect(r.reportDelay()).To(Equal(tt.want))
		})
	}
	r := &Engine{cfg: Config{RunningReportDelay: time.Second, MaxRunningReportDelay: 5 * time.Second}}
	for i := range 4 * runsPerReportDelay {
		r.inProgress.add(types.NamespacedName{Namespace: "t", Name: fmt.Sprint(i)})
	}
	for i := range 4 * runsPerReportDelay {
		r.inProgress.remove(types.NamespacedName{Namespace: "t", Name: fmt.Sprint(i)})
		r.inProgress.remove(types.NamespacedName{Namespace: "t", Name: fmt.Sprint(i)}) // once only
	}
	NewWithT(t).Expect(r.reportDelay()).To(Equal(time.Second), "the runs finished: quiet again")
}

// TestCanBind: a claim that names no StorageClass, on a cluster with no
// default one, is taken to bind only to a PersistentVolume the binder
// would give it.
func TestCanBind(t *testing.T) {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-t-worker", Name: "cyclone-pvc-t", UID: "claim"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
		},
	}
	pv := func(change func(*corev1.PersistentVolume)) *corev1.PersistentVolume {
		v := &corev1.PersistentVolume{
			Spec: corev1.PersistentVolumeSpec{
				Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("20Gi")},
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
			},
			Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
		}
		if change != nil {
			change(v)
		}
		return v
	}
	tests := []struct {
		name string
		pv   *corev1.PersistentVolume
		want bool
	}{
		{"An Available volume of no class, with room and the claim's access mode.", pv(nil), true},
		{"A volume of a class.", pv(func(v *corev1.PersistentVolume) { v.Spec.StorageClassName = "fast" }), false},
		{"A volume bound to another claim.", pv(func(v *corev1.PersistentVolume) {
			v.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "cyclone-u-worker", Name: "cyclone-pvc-u"}
			v.Status.Phase = corev1.VolumeBound
		}), false},
		{"A volume reserved for this claim, by name.", pv(func(v *corev1.PersistentVolume) {
			v.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "cyclone-t-worker", Name: "cyclone-pvc-t"}
		}), true},
		{"A volume reserved for an earlier claim of the same name.", pv(func(v *corev1.PersistentVolume) {
			v.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "cyclone-t-worker", Name: "cyclone-pvc-t", UID: "earlier"}
		}), false},
		{"A Released volume.", pv(func(v *corev1.PersistentVolume) { v.Status.Phase = corev1.VolumeReleased }), false},
		{"A volume too small.", pv(func(v *corev1.PersistentVolume) {
			v.Spec.Capacity[corev1.ResourceStorage] = resource.MustParse("5Gi")
		}), false},
		{"A volume without the claim's access mode.", pv(func(v *corev1.PersistentVolume) {
			v.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany}
		}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(canBind(tt.pv, pvc)).To(Equal(tt.want))
		})
	}
}
