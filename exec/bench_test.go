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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

// Size of the benchmark workload.
const (
	benchRuns    = 200
	benchWorkers = 16
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// writeCounter counts write requests, and all requests but watches by
// method, resource and outcome, so that a benchmark can say where its
// requests go.
type writeCounter struct {
	total atomic.Int64
	mu    sync.Mutex
	by    map[string]int
}

func (w *writeCounter) Load() int64 { return w.total.Load() }

// count records one request and its response.
func (w *writeCounter) count(r *http.Request, resp *http.Response, err error) {
	if r.Method != http.MethodGet {
		w.total.Add(1)
	}
	// .../namespaces/<ns>/<resource>[/<name>[/<subresource>]]
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	what := r.URL.Path
	if i := slices.Index(parts, "namespaces"); i >= 0 && i+2 < len(parts) {
		what = strings.Join(slices.Delete(parts[i+2:], 1, min(2, len(parts)-i-2)), "/")
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
}

// report returns the counts by method, resource and outcome, per stage.
func (w *writeCounter) report(stages float64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var lines []string
	for k, n := range w.by {
		lines = append(lines, fmt.Sprintf("%6.2f  %s", float64(n)/stages, k))
	}
	slices.Sort(lines)
	slices.Reverse(lines)
	return strings.Join(lines, "\n")
}

// countingConfig is env's config with client-side throttling out of the
// way and a counter of write requests.
func countingConfig(writes *writeCounter) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if r.URL.Query().Get("watch") != "true" {
				writes.count(r, resp, err)
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
// engine's own stage Pod, created raw as many times, which tells the
// engine's overhead apart from the cost of the Pods it must make.
func BenchmarkEngine(b *testing.B) {
	requireCluster(b)
	for range b.N {
		raw, lifecycles := rawPodRates(b, nil)
		stagesPerSec, stagePod, gcPod := benchRun(b, raw, lifecycles)
		if stagePod == nil || gcPod == nil {
			b.Fatal("no stage Pod or no GC Pod was seen")
		}
		_, shaped := rawPodRates(b, stagePod)
		b.ReportMetric(shaped, "raw-stage-pod-lifecycles/s")
		b.ReportMetric(stagesPerSec/shaped, "x-raw-stage-pod-lifecycle")
		replay := rawWorkload(b, stagePod, gcPod)
		b.ReportMetric(replay, "raw-workload-stages/s")
		b.ReportMetric(replay/raw, "raw-workload-x-raw-create")
		b.ReportMetric(stagesPerSec/replay, "x-raw-workload")
		b.Logf("the engine's Pods alone, created, run, deleted and garbage-collected raw: %.1f stages/s = %.2f × raw Pod creates/s; the engine reaches %.2f of that",
			replay, replay/raw, stagesPerSec/replay)
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

// rawWorkload replays, without the engine, the Pod work the engine must
// do for the benchmark's runs: for each run five stage Pods shaped like
// stagePod and a GC Pod shaped like gcPod are created and run to
// Succeeded, then the stage Pods are deleted with one request per run and
// the GC Pod with one of its own, as the engine does. It returns stages
// per second from the first create to the last Pod gone. Nothing orders
// the Pods as a run's stages are ordered and no status is written, so
// this is what a run engine that cost nothing would reach on this
// cluster.
func rawWorkload(b *testing.B, stagePod, gcPod *corev1.Pod) float64 {
	c, ns, worker := rawClient(b)
	const perRun = 6 // five stages and the GC Pod
	n := benchRuns * perRun
	podOf := func(i int) *corev1.Pod {
		run, k := i/perRun, i%perRun
		template, name := stagePod, fmt.Sprintf("run%03d-s%d", run, k)
		if k == perRun-1 {
			template, name = gcPod, fmt.Sprintf("run%03d-gc", run)
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
	start := time.Now()
	parallel(b, n, func(i int) error { return c.Create(context.Background(), podOf(i)) })
	succeeded()
	gone := watchUntil(b, &corev1.PodList{}, worker, n, nil)
	parallel(b, benchRuns, func(run int) error {
		if err := c.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(worker),
			client.MatchingLabels{"run": strconv.Itoa(run), "kind": "stage"}); err != nil {
			return err
		}
		return c.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: worker, Name: fmt.Sprintf("run%03d-gc", run)}})
	})
	gone()
	return float64(benchRuns*5) / time.Since(start).Seconds()
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
// that the measured work does not cost already. The API server closes a
// watch whose reader falls behind, so a closed watch resumes from the last
// event it delivered.
func watchUntil(b *testing.B, list client.ObjectList, ns string, n int, done func(client.Object) bool) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	seen := make(chan int, 1)
	names := map[string]bool{}
	rv := ""
	watchFrom := func() (watch.Interface, error) {
		return k8s.Watch(ctx, list, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	}
	w, err := watchFrom()
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	go func() {
		for len(names) < n && ctx.Err() == nil {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					// Most likely the resume point is too old: start over
					// from the current state.
					rv = ""
					continue
				}
				obj, ok := ev.Object.(client.Object)
				if !ok {
					continue
				}
				rv = obj.GetResourceVersion()
				if done == nil && ev.Type != watch.Deleted || done != nil && (ev.Type == watch.Deleted || !done(obj)) {
					continue
				}
				names[obj.GetName()] = true
				if len(names) == n {
					break
				}
			}
			w.Stop()
			for len(names) < n && ctx.Err() == nil {
				if w, err = watchFrom(); err == nil {
					break
				}
				rv = ""
				time.Sleep(100 * time.Millisecond)
			}
		}
		seen <- len(names)
	}()
	return func() {
		defer cancel()
		if got := <-seen; got < n {
			b.Fatalf("watch ended with %d of %d objects done", got, n)
		}
	}
}

// stamp is when the benchmark saw a stage Pod appear and succeed.
type stamp struct{ added, succeeded time.Time }

// benchRun runs the workload and returns its stages per second and the
// first stage Pod and GC Pod it saw.
func benchRun(b *testing.B, raw, lifecycles float64) (float64, *corev1.Pod, *corev1.Pod) {
	g := NewWithT(b)
	ns := newTenant(b)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	diamond(b, ns, map[string]map[string]string{
		"a": succeed("0s"), "b": succeed("0s"), "c": succeed("0s"), "d": succeed("0s"), "e": succeed("0s"),
	})

	var mu sync.Mutex
	stamps := map[string]*stamp{} // by "<run>/<stage>"
	var stagePod, gcPod *corev1.Pod
	w, err := k8s.Watch(context.Background(), &corev1.PodList{}, client.InNamespace(worker))
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if ok && pod.Labels[convention.LabelPodKind] == convention.PodKindGC {
				mu.Lock()
				if gcPod == nil {
					gcPod = pod.DeepCopy()
				}
				mu.Unlock()
			}
			if !ok || pod.Annotations[convention.AnnotationStage] == "" {
				continue
			}
			now := time.Now()
			k := pod.Annotations[convention.AnnotationRun] + "/" + pod.Annotations[convention.AnnotationStage]
			mu.Lock()
			s := stamps[k]
			if s == nil {
				s = &stamp{}
				stamps[k] = s
			}
			if ev.Type == watch.Added && s.added.IsZero() {
				s.added = now
				if stagePod == nil {
					stagePod = pod.DeepCopy()
				}
			}
			if pod.Status.Phase == corev1.PodSucceeded && s.succeeded.IsZero() {
				s.succeeded = now
			}
			mu.Unlock()
		}
	}()

	var writes writeCounter
	cfg := testConfig()
	cfg.MaxConcurrentReconciles = benchWorkers
	e, stop := startEngineOn(b, countingConfig(&writes), cfg, nil)
	defer stop()

	succeeded := watchUntil(b, &cyclonev1alpha1.WorkflowRunList{}, ns, benchRuns, func(o client.Object) bool {
		return o.(*cyclonev1alpha1.WorkflowRun).Status.Overall.Phase == cyclonev1alpha1.StatusSucceeded
	})
	b.ResetTimer()
	start := time.Now()
	for i := range benchRuns {
		createRun(b, ns, fmt.Sprintf("run%03d", i), "diamond")
	}
	succeeded()
	elapsed := time.Since(start)
	b.StopTimer()
	runWrites := writes.Load()
	runReconciles := e.reconciles.Load()

	// Let GC finish so the namespace is left clean, and count its writes.
	g.Eventually(func(g Gomega) {
		list := &cyclonev1alpha1.WorkflowRunList{}
		g.Expect(k8s.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
		for _, r := range list.Items {
			g.Expect(r.Status.Cleaned).To(BeTrue())
		}
	}).WithTimeout(10 * time.Minute).WithPolling(time.Second).Should(Succeed())

	depends := map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"d"}}
	var lat []time.Duration
	mu.Lock()
	for i := range benchRuns {
		run := fmt.Sprintf("%s/run%03d", ns, i)
		for stage, deps := range depends {
			s := stamps[run+"/"+stage]
			if s == nil || s.added.IsZero() {
				continue
			}
			var ready time.Time
			for _, d := range deps {
				if ds := stamps[run+"/"+d]; ds != nil && ds.succeeded.After(ready) {
					ready = ds.succeeded
				}
			}
			lat = append(lat, s.added.Sub(ready))
		}
	}
	mu.Unlock()
	slices.Sort(lat)
	stages := float64(benchRuns * 5)
	stagesPerSec := stages / elapsed.Seconds()
	b.ReportMetric(stagesPerSec, "stages/s")
	b.ReportMetric(raw, "raw-pods/s")
	// The goal: stages/s at least 0.4 × raw Pod creates/s.
	b.ReportMetric(stagesPerSec/raw, "x-raw-create")
	b.ReportMetric(lifecycles, "raw-lifecycles/s")
	b.ReportMetric(stagesPerSec/lifecycles, "x-raw-lifecycle")
	b.ReportMetric(float64(runWrites)/stages, "writes/stage")
	b.ReportMetric(float64(writes.Load())/stages, "writes/stage+gc")
	b.ReportMetric(float64(runReconciles)/benchRuns, "reconciles/run")
	b.Logf("%.1f stages/s = %.2f × raw Pod creates/s (%.1f; goal ≥ 0.4×) = %.2f × raw Pod lifecycles/s (%.1f)",
		stagesPerSec, stagesPerSec/raw, raw, stagesPerSec/lifecycles, lifecycles)
	b.Logf("engine requests per stage, GC included, by request and response code:\n%s", writes.report(stages))
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	}
	mu.Lock()
	defer mu.Unlock()
	return stagesPerSec, stagePod, gcPod
}
