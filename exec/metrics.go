package exec

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// Every label value of the engine's metrics comes from a bounded set: the
// tenant (one per Tenant), the workflow and stage names (Workflows that
// exist: see workflowLabel) and the phase (Succeeded, Failed, Cancelled).
// Run names, Pod names and revisions are never labels: each run would
// start new series.

// runMetrics are the WorkflowRun engine's Prometheus metrics.
type runMetrics struct {
	started    *prometheus.CounterVec
	finished   *prometheus.CounterVec
	runTime    *prometheus.HistogramVec
	stageTime  *prometheus.HistogramVec
	podLatency *prometheus.HistogramVec
}

// engineMetrics returns the engine's metrics, registered once in
// controller-runtime's registry, which is process-wide: every Engine of a
// process (tests start several) shares them, and the manager serves them.
var engineMetrics = sync.OnceValue(func() *runMetrics {
	m := &runMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_runs_started_total",
			Help: "WorkflowRuns started. Labels are bounded: tenant and workflow, never the run's name.",
		}, []string{"tenant", "workflow"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gyre_runs_finished_total",
			Help: "WorkflowRuns finished, by final phase (Succeeded, Failed, Cancelled); each run once.",
		}, []string{"tenant", "workflow", "phase"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gyre_run_duration_seconds",
			Help:    "Time from a WorkflowRun's start to its end.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 s .. 4.5 h
		}, []string{"tenant", "workflow"}),
		stageTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gyre_stage_duration_seconds",
			Help:    "Time from the start of a stage's last attempt to the stage's end, by final phase.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 16), // 0.5 s .. 4.5 h
		}, []string{"tenant", "workflow", "stage", "phase"}),
		podLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gyre_stage_pod_creation_delay_seconds",
			Help: "Time from a stage becoming ready (its last dependency finished, or the run started) " +
				"to its first Pod being created: the engine's own latency plus waits for parallelism and quota.",
			Buckets: []float64{0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30},
		}, []string{"tenant", "workflow"}),
	}
	metrics.Registry.MustRegister(m.started, m.finished, m.runTime, m.stageTime, m.podLatency)
	return m
})

// observeTransitions counts what the status the engine has just written
// changed since old: a run started, stages and the run finished. Like the
// Events, the metrics follow written status, and a status write carries
// the run's resourceVersion: a transition is written once, so a run is
// counted finished once, whatever the requeues and restarts.
func (r *Engine) observeTransitions(run *cyclonev1alpha1.WorkflowRun, old *cyclonev1alpha1.WorkflowRunStatus) {
	m := engineMetrics()
	tenant, wf := Tenant(run.Namespace), workflowLabel(run)
	st := &run.Status
	if old.Overall.StartTime == nil && st.Overall.StartTime != nil {
		m.started.WithLabelValues(tenant, wf).Inc()
	}
	for _, name := range sortedStages(st.Stages) {
		ss := st.Stages[name].Status
		if before := old.Stages[name]; (before != nil && convention.Finished(before.Status.Phase)) || !convention.Finished(ss.Phase) {
			continue
		}
		if d, ok := span(ss.StartTime, ss.CompletionTime); ok {
			m.stageTime.WithLabelValues(tenant, wf, name, string(ss.Phase)).Observe(d)
		}
	}
	if convention.Finished(old.Overall.Phase) || !convention.Finished(st.Overall.Phase) {
		return
	}
	m.finished.WithLabelValues(tenant, wf, string(st.Overall.Phase)).Inc()
	if d, ok := span(st.Overall.StartTime, st.Overall.CompletionTime); ok {
		m.runTime.WithLabelValues(tenant, wf).Observe(d)
	}
}

// workflowLabel is the workflow label of run: its Workflow's name once it
// has started, which only a Workflow that exists lets it do. A run that
// never started (refused, or naming a Workflow that is not there) has
// "": anyone who may create runs could otherwise make a series of every
// name they write in spec.workflowRef.
func workflowLabel(run *cyclonev1alpha1.WorkflowRun) string {
	if run.Status.Overall.StartTime == nil {
		return ""
	}
	return workflowName(run)
}

// span is the seconds from start to end, when both are known: a stage
// cancelled before it ran, or a run refused before it started, has no
// duration to report.
func span(start, end *metav1.Time) (float64, bool) {
	if start == nil || end == nil {
		return 0, false
	}
	return end.Sub(start.Time).Seconds(), true
}

// asTime is t, or the zero time for none.
func asTime(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// observePodCreated records how long the first attempt of a stage waited
// between becoming ready and having its Pod created. Retries are left
// out: their wait is the retry back-off, not the engine's delay.
//
// Status times have a resolution of one second. A stage usually becomes
// ready in the reconcile that creates its Pod (the one that observed its
// last dependency finish, or started the run), so a ready time within the
// second of that reconcile is taken as the reconcile's own start, which
// is exact in that case; an older one is at most a second early.
func (r *Engine) observePodCreated(s *scope, pod *corev1.Pod) {
	if pod.Labels[convention.LabelPodKind] != convention.PodKindWorkload {
		return
	}
	st := &s.run.Status
	if s.round != nil {
		st = s.round // the Pod is created before its attempt is written
	}
	ss := st.Stages[pod.Annotations[convention.AnnotationStage]]
	if ss == nil || ss.Attempt != 1 {
		return
	}
	ready := readyAt(st, ss)
	if ready.IsZero() {
		return
	}
	if !ready.Before(s.now.Truncate(time.Second)) {
		ready = s.now
	}
	// The round's status: a start held back with it is not written yet.
	wf := ""
	if st.Overall.StartTime != nil {
		wf = workflowName(s.run)
	}
	engineMetrics().podLatency.WithLabelValues(Tenant(s.run.Namespace), wf).
		Observe(r.cfg.Clock.Since(ready).Seconds())
}

// readyAt is when stage ss could first start: the end of its last
// dependency in the run, or the run's start for a stage without one.
func readyAt(st *cyclonev1alpha1.WorkflowRunStatus, ss *cyclonev1alpha1.StageStatus) time.Time {
	ready := asTime(st.Overall.StartTime)
	for _, d := range ss.Depends {
		if dep := st.Stages[d]; dep != nil {
			if end := asTime(dep.Status.CompletionTime); end.After(ready) {
				ready = end
			}
		}
	}
	return ready
}
