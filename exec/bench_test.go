package exec

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

// Size of the benchmark workload. The engine runs with its default
// workers (Config.MaxConcurrentReconciles); the raw phases send with
// benchWorkers clients, so that their rates compare from one version of
// the engine to the next.
const (
	benchRuns    = 200
	benchWorkers = 16
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// writeCounter counts write requests, and all requests but watches by
// method, resource and outcome, so that a benchmark can say where its
// requests go.
//
// A write is a request that changes an object the run's progress rests
// on: a POST, PUT, PATCH or DELETE of a WorkflowRun (its status included),
// a Pod or a Secret. Events are counted apart: they are sent in the
// background by the event broadcaster, aggregated, and lost without harm,
// so no stage waits on them.
type writeCounter struct {
	total  atomic.Int64
	events atomic.Int64
	mu     sync.Mutex
	by     map[string]int
	// tracing, when set, keeps every request with the time it was sent
	// and answered, in trace.
	tracing atomic.Bool
	trace   []traceLine
}

// traceLine is one thing that happened at a time, for a trace.
type traceLine struct {
	at   time.Time
	what string
}

// Load returns the writes counted so far.
func (w *writeCounter) Load() int64 { return w.total.Load() }

// count records one request, sent at sent, and its response.
func (w *writeCounter) count(r *http.Request, sent time.Time, resp *http.Response, err error) {
	// .../namespaces/<ns>/<resource>[/<name>[/<subresource>]]
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	what := r.URL.Path
	if i := slices.Index(parts, "namespaces"); i >= 0 && i+2 < len(parts) {
		what = strings.Join(slices.Delete(parts[i+2:], 1, min(2, len(parts)-i-2)), "/")
	}
	switch {
	case r.Method == http.MethodGet:
	case what == "events":
		w.events.Add(1)
	default:
		w.total.Add(1)
	}
	outcome := "error"
	if err == nil {
		outcome = strconv.Itoa(resp.StatusCode)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.by == nil {
		w.by = map[string]int{}
	}
	w.by[r.Method+" "+what+" "+outcome]++
	if w.tracing.Load() {
		w.trace = append(w.trace, traceLine{at: sent, what: "engine sends " + r.Method + " " + r.URL.Path},
			traceLine{at: time.Now(), what: "engine gets " + outcome + " for " + r.Method + " " + what})
	}
}

// report returns the counts by method, resource and outcome, per stage.
func (w *writeCounter) report(stages float64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reportLocked(stages)
}

// reportLocked is report with w.mu held.
func (w *writeCounter) reportLocked(stages float64) string {
	var lines []string
	for k, n := range w.by {
		lines = append(lines, fmt.Sprintf("%6.2f  %s", float64(n)/stages, k))
	}
	slices.Sort(lines)
	slices.Reverse(lines)
	return strings.Join(lines, "\n")
}

// sentLocked counts the traced requests whose method and path start with
// request, with w.mu held.
func (w *writeCounter) sentLocked(request string) int {
	n := 0
	for _, l := range w.trace {
		if strings.HasPrefix(l.what, "engine sends "+request) {
			n++
		}
	}
	return n
}

// countingConfig is env's config with client-side throttling out of the
// way and a counter of write requests.
func countingConfig(writes *writeCounter) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent := time.Now()
			resp, err := rt.RoundTrip(r)
			if r.URL.Query().Get("watch") != "true" {
				writes.count(r, sent, resp, err)
			}
			return resp, err
		})
	})
	return cfg
}

// BenchmarkEngine runs 200 WorkflowRuns of a 5-stage diamond at once on
// kwok and reports stage throughput, API writes per stage and the latency
// from a dependency's success to the next stage's Pod, next to the raw
// rate at which the same API server creates Pods. Run it with
// -benchtime=1x: one iteration is the whole workload.
//
// A stage Pod is several times the size of a one-container Pod (the
// coordinator, volumes, environment), and every write of it and every
// watch event costs in proportion. So the benchmark also replays the
// engine's own writes, raw and with no controller: as many runs created,
// stage Pods and GC Pods created, run and deleted, run status and
// metadata patches, and Events recorded on the runs. engine/replay is the
// engine's stages per second over that replay's; what is left is the
// engine's own cost. How many writes it makes is writes/stage's and
// events/stage's to tell.
//
// ready-to-pod-p50-ms and -p99-ms are measured apart, on an idle cluster
// with one run at a time (readyToPod).
func BenchmarkEngine(b *testing.B) {
	requireCluster(b)
	// As config/default installs gyre: every new run carries the
	// engine's finalizer from its creation (config/admission).
	if err := testcluster.InstallRunFinalizer(context.Background(), env.Config); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		raw, lifecycles := rawPodRates(b, nil)
		res := benchRun(b, raw, lifecycles)
		// After benchRun, whose ResetTimer drops the metrics reported
		// before it.
		readyToPod(b)
		if res.stagePod == nil || res.gcPod == nil {
			b.Fatal("no stage Pod or no GC Pod was seen")
		}
		_, shaped := rawPodRates(b, res.stagePod)
		b.ReportMetric(shaped, "raw-stage-pod-lifecycles/s")
		b.ReportMetric(res.stagesPerSec/shaped, "x-raw-stage-pod-lifecycle")
		replay := rawWorkload(b, res)
		b.ReportMetric(replay, "raw-workload-stages/s")
		b.ReportMetric(replay/raw, "raw-workload-x-raw-create")
		b.ReportMetric(res.stagesPerSec/replay, "engine/replay")
		b.Logf("the engine's writes alone, replayed raw: %.1f stages/s = %.2f × raw Pod creates/s; the engine reaches %.2f of that (goal ≥ 0.9)",
			replay, replay/raw, res.stagesPerSec/replay)
	}
}

// rawPodRates creates as many Pods as the workload has stages, with
// as many concurrent clients as the engine has workers, and returns Pods
// created per second, and how many of the same Pods per second go all the
// way to Succeeded. The Pods are copies of template, or of a
// one-container Pod when template is nil.
func rawPodRates(b *testing.B, template *corev1.Pod) (creates, lifecycles float64) {
	c, ns, worker := rawClient(b)
	n := benchRuns * 5
	succeeded := watchUntil(b, &corev1.PodList{}, worker, n, func(o client.Object) bool {
		return o.(*corev1.Pod).Status.Phase == corev1.PodSucceeded
	})
	start := time.Now()
	parallel(b, n, func(i int) error {
		return c.Create(context.Background(), rawPod(template, ns, fmt.Sprintf("raw-%d", i)))
	})
	rate := float64(n) / time.Since(start).Seconds()
	// The whole life of the same Pods under kwok: scheduled, run,
	// succeeded. This is the ceiling for stages, which need all of it.
	succeeded()
	lifecycles = float64(n) / time.Since(start).Seconds()
	// Wait until they are gone, so that the engine's part has the
	// cluster to itself.
	_ = c.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(worker))
	NewWithT(b).Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8s.List(context.Background(), pods, client.InNamespace(worker))).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).WithTimeout(5 * time.Minute).WithPolling(time.Second).Should(Succeed())
	return rate, lifecycles
}

// rawClient is a client with the engine's rate limits, and a new tenant
// and its worker namespace for a raw phase to fill.
func rawClient(b *testing.B) (c client.Client, ns, worker string) {
	var writes writeCounter
	c, err := client.New(countingConfig(&writes), client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	ns = newTenant(b)
	return c, ns, "cyclone-" + Tenant(ns) + "-worker"
}

// rawPod is a copy of template, or of a one-container Pod when template is
// nil, named name in the worker namespace of tenant namespace ns, that
// succeeds under kwok.
func rawPod(template *corev1.Pod, ns, name string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "cyclone-" + Tenant(ns) + "-worker",
			Annotations: map[string]string{testcluster.AnnotationResult: "succeed"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	}
	if template == nil {
		return pod
	}
	pod.Spec = *template.Spec.DeepCopy()
	pod.Spec.NodeName = ""
	for i := range pod.Spec.Volumes {
		if pvc := pod.Spec.Volumes[i].PersistentVolumeClaim; pvc != nil {
			pvc.ClaimName = "cyclone-pvc-" + Tenant(ns)
		}
	}
	return pod
}

// rawWorkload replays, without the engine, the writes the engine made for
// the benchmark's runs: the runs are created, and for each run five stage
// Pods shaped like the engine's stage Pod and a GC Pod shaped like its GC
// Pod are created and run to Succeeded, then the stage Pods are deleted
// and the GC Pod too, with as many requests as the engine used; the runs
// get as many status and metadata patches as the engine wrote, and as
// many Events as it recorded, shaped like its Events. It returns
// stages per second from the first create to the last Pod gone. Nothing
// orders the Pods as a run's stages are ordered, so this is what a run
// engine that cost nothing would reach on this cluster.
func rawWorkload(b *testing.B, res benchResult) float64 {
	c, ns, worker := rawClient(b)
	ctx := context.Background()
	const perRun = 6 // five stages and the GC Pod
	n := benchRuns * perRun
	podOf := func(i int) *corev1.Pod {
		run, k := i/perRun, i%perRun
		template, name := res.stagePod, fmt.Sprintf("run%03d-s%d", run, k)
		if k == perRun-1 {
			template, name = res.gcPod, fmt.Sprintf("run%03d-gc", run)
		}
		pod := rawPod(template, ns, name)
		pod.Labels = map[string]string{"run": strconv.Itoa(run), "kind": "stage"}
		if k == perRun-1 {
			pod.Labels["kind"] = "gc"
		}
		return pod
	}
	succeeded := watchUntil(b, &corev1.PodList{}, worker, n, func(o client.Object) bool {
		return o.(*corev1.Pod).Status.Phase == corev1.PodSucceeded
	})
	statusPatches := int(res.statusPatches + 0.5)
	metaPatches := int(res.metaPatches + 0.5)
	events := int(res.events + 0.5)
	start := time.Now()
	runs := make([]*cyclonev1alpha1.WorkflowRun, benchRuns)
	for i := range benchRuns {
		runs[i] = createRun(b, ns, fmt.Sprintf("run%03d", i), "diamond")
	}
	// Pod creates, run patches and Events interleave, as the engine's do.
	parallel(b, n+statusPatches+metaPatches+events, func(i int) error {
		switch {
		case i < n:
			return c.Create(ctx, podOf(i))
		case i >= n+statusPatches+metaPatches:
			k := i - n - statusPatches - metaPatches
			return c.Create(ctx, runEvent(runs[k%benchRuns], k))
		case i < n+statusPatches:
			k := i - n
			run := &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: runs[k%benchRuns].Name}}
			patch := fmt.Appendf(nil, `{"status":{"overall":{"phase":"Running","message":"write %d"}}}`, k)
			return c.Status().Patch(ctx, run, client.RawPatch(types.MergePatchType, patch))
		default:
			k := i - n - statusPatches
			run := &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: runs[k%benchRuns].Name}}
			patch := fmt.Appendf(nil, `{"metadata":{"labels":{"replay":"%d"}}}`, k)
			return c.Patch(ctx, run, client.RawPatch(types.MergePatchType, patch))
		}
	})
	succeeded()
	gone := watchUntil(b, &corev1.PodList{}, worker, n, nil)
	parallel(b, benchRuns, func(run int) error {
		if res.deletesPerRun < 1.5 {
			return c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(worker), client.MatchingLabels{"run": strconv.Itoa(run)})
		}
		if err := c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(worker),
			client.MatchingLabels{"run": strconv.Itoa(run), "kind": "stage"}); err != nil {
			return err
		}
		return c.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: worker, Name: fmt.Sprintf("run%03d-gc", run)}})
	})
	gone()
	return float64(benchRuns*5) / time.Since(start).Seconds()
}

// runEvent is the k-th Event of the replay on run, shaped like the Events
// the engine records (recordTransitions).
func runEvent(run *cyclonev1alpha1.WorkflowRun, k int) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: run.Namespace, Name: fmt.Sprintf("%s.replay%d", run.Name, k)},
		EventTime:  metav1.NewMicroTime(time.Now()),
		Regarding: corev1.ObjectReference{APIVersion: cyclonev1alpha1.GroupVersion.String(), Kind: "WorkflowRun",
			Namespace: run.Namespace, Name: run.Name, UID: run.UID, ResourceVersion: run.ResourceVersion},
		Type: corev1.EventTypeNormal, Reason: EventStageSucceeded, Action: "RunStage", Note: "Stages b, c, d succeeded",
		ReportingController: "gyre-exec", ReportingInstance: "gyre-exec-replay",
	}
}

// parallel calls fn(0) … fn(n-1) from benchWorkers goroutines.
func parallel(b *testing.B, n int, fn func(int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range benchWorkers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := fn(int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// watchUntil watches the objects of list's kind in namespace ns and
// returns a function that waits until n distinct ones have satisfied done,
// or, when done is nil, until n have been deleted.
// A watch, unlike polling with List, costs the API server next to nothing
// that the measured work does not cost already.
func watchUntil(b *testing.B, list client.ObjectList, ns string, n int, done func(client.Object) bool) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	names := map[string]bool{}
	all := make(chan struct{})
	ended := resumeWatch(ctx, b, list, ns, func(ev watch.Event) {
		obj, ok := ev.Object.(client.Object)
		if !ok || len(names) == n {
			return
		}
		if done == nil && ev.Type != watch.Deleted || done != nil && (ev.Type == watch.Deleted || !done(obj)) {
			return
		}
		names[obj.GetName()] = true
		if len(names) == n {
			close(all)
		}
	})
	return func() {
		defer cancel()
		select {
		case <-all:
		case <-ended:
			b.Fatalf("watch ended with %d of %d objects done", len(names), n)
		}
	}
}

// resumeWatch calls fn, from one goroutine, with every event of a watch
// of list's kind in namespace ns until ctx ends, and returns a channel
// closed after the last call. The API server closes a watch whose reader
// falls behind, as on a loaded machine: a closed watch resumes from the
// last event it delivered, or from the current state when that point is
// too old.
func resumeWatch(ctx context.Context, b *testing.B, list client.ObjectList, ns string, fn func(watch.Event)) <-chan struct{} {
	rv := ""
	watchFrom := func() (watch.Interface, error) {
		return k8s.Watch(ctx, list, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	}
	w, err := watchFrom()
	if err != nil {
		b.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for ctx.Err() == nil {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					rv = ""
					continue
				}
				if o, ok := ev.Object.(client.Object); ok {
					rv = o.GetResourceVersion()
				}
				fn(ev)
			}
			w.Stop()
			for ctx.Err() == nil {
				if w, err = watchFrom(); err == nil {
					break
				}
				rv = ""
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	return ended
}

// stamp is when the benchmark saw a stage Pod appear and succeed, by the
// receive time of the watch events: a Pod's creationTimestamp has a
// resolution of one second, and kwok's condition times too.
type stamp struct{ added, succeeded time.Time }

// stageWatch records, from a watch of the worker namespace, when each
// stage Pod ("<run>/<stage>") was created and seen Succeeded, and keeps
// the first stage Pod and GC Pod it sees.
type stageWatch struct {
	mu       sync.Mutex
	stamps   map[string]*stamp
	stagePod *corev1.Pod
	gcPod    *corev1.Pod
	// onEvent, when set, is called with every stage Pod event, under mu.
	onEvent func(key string, ev watch.EventType, pod *corev1.Pod, at time.Time)
}

// watchStages starts a stageWatch on namespace worker until the benchmark
// ends.
func watchStages(b *testing.B, worker string) *stageWatch {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	sw := &stageWatch{stamps: map[string]*stamp{}}
	events := make(chan watch.Event)
	go func() {
		<-resumeWatch(ctx, b, &corev1.PodList{}, worker, func(ev watch.Event) {
			select {
			case events <- ev:
			case <-ctx.Done():
			}
		})
		close(events)
	}()
	go func() {
		for ev := range events {
			now := time.Now()
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			sw.mu.Lock()
			if pod.Labels[convention.LabelPodKind] == convention.PodKindGC && sw.gcPod == nil {
				sw.gcPod = pod.DeepCopy()
			}
			if pod.Annotations[convention.AnnotationStage] != "" {
				k := pod.Annotations[convention.AnnotationRun] + "/" + pod.Annotations[convention.AnnotationStage]
				s := sw.stamps[k]
				if s == nil {
					s = &stamp{}
					sw.stamps[k] = s
				}
				if ev.Type == watch.Added && s.added.IsZero() {
					s.added = now
					if sw.stagePod == nil {
						sw.stagePod = pod.DeepCopy()
					}
				}
				if pod.Status.Phase == corev1.PodSucceeded && s.succeeded.IsZero() {
					s.succeeded = now
				}
				if sw.onEvent != nil {
					sw.onEvent(k, ev.Type, pod, now)
				}
			}
			sw.mu.Unlock()
		}
	}()
	return sw
}

// diamondDepends is what each stage of the benchmark's diamond waits for.
var diamondDepends = map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"d"}}

// latencies returns, for the named runs in namespace ns, each stage's
// ready-to-pod latency: from its last dependency's Pod seen Succeeded to
// its own Pod seen created; and each stage Pod's life under kwok and the
// scheduler: from seen created to seen Succeeded, which is not the
// engine's.
func (sw *stageWatch) latencies(ns string, runs []string) (ready, kwok []time.Duration) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for _, run := range runs {
		for _, stage := range []string{"a", "b", "c", "d", "e"} {
			s := sw.stamps[ns+"/"+run+"/"+stage]
			if s == nil || s.added.IsZero() {
				continue
			}
			if !s.succeeded.IsZero() {
				kwok = append(kwok, s.succeeded.Sub(s.added))
			}
			deps := diamondDepends[stage]
			if len(deps) == 0 {
				continue
			}
			var readyAt time.Time
			for _, d := range deps {
				if ds := sw.stamps[ns+"/"+run+"/"+d]; ds != nil && ds.succeeded.After(readyAt) {
					readyAt = ds.succeeded
				}
			}
			if !readyAt.IsZero() {
				ready = append(ready, s.added.Sub(readyAt))
			}
		}
	}
	slices.Sort(ready)
	slices.Sort(kwok)
	return ready, kwok
}

// percentile returns the p-th percentile of sorted durations in
// milliseconds.
func percentile(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)*p/100, len(sorted)-1)].Microseconds()) / 1000
}

// benchResult is what benchRun measured and what the replay repeats.
type benchResult struct {
	stagesPerSec    float64
	stagePod, gcPod *corev1.Pod
	// statusPatches and metaPatches are the engine's run status and run
	// metadata patches, events the Events it recorded, and deletesPerRun
	// its Pod deletions per run.
	statusPatches, metaPatches, events, deletesPerRun float64
}

// benchRun runs the workload and returns what it measured.
func benchRun(b *testing.B, raw, lifecycles float64) benchResult {
	g := NewWithT(b)
	ns := newTenant(b)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	diamond(b, ns, map[string]map[string]string{
		"a": succeed("0s"), "b": succeed("0s"), "c": succeed("0s"), "d": succeed("0s"), "e": succeed("0s"),
	})
	sw := watchStages(b, worker)

	var writes writeCounter
	e, stop := startEngineOn(b, countingConfig(&writes), testConfig(), nil)
	defer stop()

	succeeded := watchUntil(b, &cyclonev1alpha1.WorkflowRunList{}, ns, benchRuns, func(o client.Object) bool {
		return o.(*cyclonev1alpha1.WorkflowRun).Status.Overall.Phase == cyclonev1alpha1.StatusSucceeded
	})
	folded := watchFolded(b, ns)
	b.ResetTimer()
	start := time.Now()
	names := make([]string, benchRuns)
	for i := range benchRuns {
		names[i] = fmt.Sprintf("run%03d", i)
		createRun(b, ns, names[i], "diamond")
	}
	succeeded()
	elapsed := time.Since(start)
	b.StopTimer()
	runWrites := writes.Load()
	runEvents := writes.events.Load()
	runReconciles := e.reconciles.Load()
	// Where a run's time goes under load: waiting in the work queue for
	// a worker, or in a reconcile.
	queued, queueings := queueSeconds(b, "workqueue_queue_duration_seconds")
	worked, works := queueSeconds(b, "workqueue_work_duration_seconds")

	// Let GC finish so the namespace is left clean, and count its writes.
	g.Eventually(func(g Gomega) {
		list := &cyclonev1alpha1.WorkflowRunList{}
		g.Expect(k8s.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
		for _, r := range list.Items {
			g.Expect(r.Status.Cleaned).To(BeTrue())
		}
	}).WithTimeout(10 * time.Minute).WithPolling(time.Second).Should(Succeed())

	lat, kwok := sw.latencies(ns, names)
	stages := float64(benchRuns * 5)
	stagesPerSec := stages / elapsed.Seconds()
	b.ReportMetric(stagesPerSec, "stages/s")
	b.ReportMetric(raw, "raw-pods/s")
	b.ReportMetric(stagesPerSec/raw, "x-raw-create")
	b.ReportMetric(lifecycles, "raw-lifecycles/s")
	b.ReportMetric(stagesPerSec/lifecycles, "x-raw-lifecycle")
	// writes/stage: the writes (see writeCounter) from the first run's
	// creation to the last run's success; +gc: until every run is
	// cleaned.
	b.ReportMetric(float64(runWrites)/stages, "writes/stage")
	b.ReportMetric(float64(writes.Load())/stages, "writes/stage+gc")
	b.ReportMetric(float64(runEvents)/stages, "events/stage")
	b.ReportMetric(float64(runReconciles)/benchRuns, "reconciles/run")
	b.ReportMetric(1000*queued/max(queueings, 1), "load-queue-wait-ms")
	b.ReportMetric(1000*worked/max(works, 1), "load-reconcile-ms")
	// The share of runs whose end was written with their clean-up, in
	// one write: the others' GC Pods took longer than the report delay
	// (reportDelay).
	b.ReportMetric(folded()/benchRuns, "ends-with-gc")
	b.Logf("%.1f stages/s = %.2f × raw Pod creates/s (%.1f) = %.2f × raw Pod lifecycles/s (%.1f)",
		stagesPerSec, stagesPerSec/raw, raw, stagesPerSec/lifecycles, lifecycles)
	b.Logf("engine requests per stage, GC included, by request and response code:\n%s", writes.report(stages))
	if len(lat) > 0 {
		// Under load: every run at once, queued behind one another.
		b.ReportMetric(percentile(lat, 50), "p50-ms")
		b.ReportMetric(percentile(lat, 99), "p99-ms")
		b.ReportMetric(percentile(kwok, 50), "load-kwok-pod-p50-ms")
	}
	writes.mu.Lock()
	defer writes.mu.Unlock()
	res := benchResult{stagesPerSec: stagesPerSec, events: float64(writes.events.Load())}
	for k, n := range writes.by {
		switch {
		case strings.HasPrefix(k, "PATCH workflowruns/status "):
			res.statusPatches += float64(n)
		case strings.HasPrefix(k, "PATCH workflowruns "):
			res.metaPatches += float64(n)
		case strings.HasPrefix(k, "DELETE pods"):
			res.deletesPerRun += float64(n) / benchRuns
		}
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	res.stagePod, res.gcPod = sw.stagePod, sw.gcPod
	return res
}

// watchFolded watches the runs of namespace ns and returns a function
// that counts those whose first finished status was cleaned already.
func watchFolded(b *testing.B, ns string) func() float64 {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	var mu sync.Mutex
	first := map[string]bool{} // run → cleaned when first seen finished
	resumeWatch(ctx, b, &cyclonev1alpha1.WorkflowRunList{}, ns, func(ev watch.Event) {
		run, ok := ev.Object.(*cyclonev1alpha1.WorkflowRun)
		if !ok || !convention.Finished(run.Status.Overall.Phase) {
			return
		}
		mu.Lock()
		if _, seen := first[run.Name]; !seen {
			first[run.Name] = run.Status.Cleaned
		}
		mu.Unlock()
	})
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, cleaned := range first {
			if cleaned {
				n++
			}
		}
		return float64(n)
	}
}

// queueSeconds returns the sum and count of the controller-runtime work
// queue histogram name for the engine's run controller, since the
// process started.
func queueSeconds(b *testing.B, name string) (sum, count float64) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "name" && l.GetValue() == "workflowrun" {
					sum += m.GetHistogram().GetSampleSum()
					count += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return sum, count
}

// Runs of the idle latency measurement.
const idleRuns = 10

// readyToPod runs the diamond idleRuns times, one run at a time, on an
// engine with nothing else to do, and reports the ready-to-pod latency
// of its stages: from the last dependency's Pod seen Succeeded to the
// stage's Pod seen created, both by the receive time of a watch event in
// the benchmark (a Pod's creationTimestamp and kwok's condition times
// have a resolution of one second). What kwok and the scheduler take to
// run a Pod to Succeeded ends before a stage is ready, so it is not
// counted; it is reported apart as kwok-pod-p50-ms. The last run is
// traced: the benchmark's Pod events, the engine's reconciles and its
// API requests, in time order.
func readyToPod(b *testing.B) {
	ns := newTenant(b)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	diamond(b, ns, map[string]map[string]string{
		"a": succeed("0s"), "b": succeed("0s"), "c": succeed("0s"), "d": succeed("0s"), "e": succeed("0s"),
	})
	sw := watchStages(b, worker)
	var writes writeCounter
	var traceMu sync.Mutex
	var trace []traceLine
	tracing := func() bool { return writes.tracing.Load() }
	sw.onEvent = func(key string, ev watch.EventType, pod *corev1.Pod, at time.Time) {
		if tracing() {
			traceMu.Lock()
			trace = append(trace, traceLine{at: at, what: fmt.Sprintf("bench sees %s %s: %s", ev, key, pod.Status.Phase)})
			traceMu.Unlock()
		}
	}
	_, stop := startEngineOn(b, countingConfig(&writes), testConfig(), func(e *Engine) {
		e.reconciled = func(run types.NamespacedName) {
			if tracing() {
				traceMu.Lock()
				trace = append(trace, traceLine{at: time.Now(), what: "engine reconciles " + run.Name})
				traceMu.Unlock()
			}
		}
	})
	defer stop()
	names := make([]string, idleRuns)
	for i := range idleRuns {
		names[i] = fmt.Sprintf("idle%02d", i)
		writes.tracing.Store(i == idleRuns-1)
		done := watchUntil(b, &cyclonev1alpha1.WorkflowRunList{}, ns, 1, func(o client.Object) bool {
			run := o.(*cyclonev1alpha1.WorkflowRun)
			return run.Name == names[i] && run.Status.Cleaned
		})
		if tracing() {
			traceMu.Lock()
			trace = append(trace, traceLine{at: time.Now(), what: "bench creates run " + names[i]})
			traceMu.Unlock()
		}
		createRun(b, ns, names[i], "diamond")
		done()
	}
	writes.tracing.Store(false)
	lat, kwok := sw.latencies(ns, names)
	b.ReportMetric(percentile(lat, 50), "ready-to-pod-p50-ms")
	b.ReportMetric(percentile(lat, 99), "ready-to-pod-p99-ms")
	b.ReportMetric(percentile(kwok, 50), "kwok-pod-p50-ms")

	writes.mu.Lock()
	traceMu.Lock()
	all := append(trace, writes.trace...)
	writes.mu.Unlock()
	traceMu.Unlock()
	slices.SortStableFunc(all, func(x, y traceLine) int { return x.at.Compare(y.at) })
	var out strings.Builder
	for _, l := range all {
		fmt.Fprintf(&out, "%8.1f ms  %s\n", float64(l.at.Sub(all[0].at).Microseconds())/1000, l.what)
	}
	b.Logf("idle ready-to-pod over %d stages: p50 %.1f ms, p99 %.1f ms; kwok and the scheduler take %.1f ms (p50) from a Pod's creation to its success", len(lat), percentile(lat, 50), percentile(lat, 99), percentile(kwok, 50))
	b.Logf("trace of run %s:\n%s", names[idleRuns-1], out.String())
}
