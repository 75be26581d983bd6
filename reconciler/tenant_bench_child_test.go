package reconciler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/render"
)

// benchChildEnv carries a gyreChild's task, as JSON, from the benchmark to
// the test binary it starts again. The benchmark's phases that replay
// writes raw render and hold what they replay, and leave their garbage and
// their high-water mark in the process; gyre's phases run in a process of
// their own, so that its memory is what a replica carrying the same
// tenants needs.
const benchChildEnv = "GYRE_BENCH_GYRE_CHILD"

// profileDirEnv names a directory for profiles of gyre's first
// convergence in the child: gyre-cpu.prof, and gyre-heap.prof after it
// (live heap, after a collection); and gyre-check.prof of repeated no-op
// full checks. go test's -cpuprofile would profile the benchmark's own
// process, which then only waits for the child.
const profileDirEnv = "GYRE_BENCH_PROFILE_DIR"

// prerenderEnv, set to any value, has the child render every target of
// its Tenants before the first convergence, so that the convergence finds
// each render in the Renderer's cache: what is left is what gyre's
// convergence costs beyond rendering. On a machine whose cores are not
// independent, gyre's rendering slows the API server beside it; this
// tells that cost from the rest.
const prerenderEnv = "GYRE_BENCH_PRERENDER"

// gyreChild is what the child process is asked to do.
type gyreChild struct {
	// Kubeconfig reaches the parent's control plane, with the parent's
	// client rate limits: a kubeconfig alone would get client-go's.
	Kubeconfig string
	QPS        float32
	Burst      int
	Dir        string
	Prefix     string
	Tenants    int
	Repository string
	Result     string
	ProfileDir string
	// Prerender renders every target before the first convergence (see
	// prerenderEnv).
	Prerender bool
	// ControlPlane are the control plane's processes, whose CPU time
	// the child measures across its first convergence.
	ControlPlane []int
}

// gyreResult is what the child measured.
type gyreResult struct {
	// First is the first convergence of every Tenant, CPU the child's
	// CPU time during it, and ControlPlaneCPU the control plane's.
	First, CPU, ControlPlaneCPU time.Duration
	// Requests counts every request of the first convergence, Kinds by
	// method and resource, and StatusWrites the Tenants' status writes.
	Requests     int64
	Kinds        map[string]int
	StatusWrites int
	// RSS and PeakRSS are the child's resident memory after the first
	// convergence, now and at most; LifePeakRSS at most over its whole
	// life, the no-op check and restart included. Heap is its live heap
	// after the first convergence. In MiB.
	RSS, PeakRSS, LifePeakRSS, Heap float64
	// Check is a full check of every Tenant with nothing to change,
	// with CheckRequests requests and CheckWrites writes.
	Check         time.Duration
	CheckRequests int64
	CheckWrites   []string
	// Restart is the same check by a freshly started controller,
	// whose caches start empty, with RestartWrites writes.
	Restart       time.Duration
	RestartWrites []string
	// FirstApply is how long after the first convergence began gyre sent
	// its first object apply, and Tail how long before it ended its
	// last: the start-up and the end of the convergence, which a replay
	// of its writes does not have.
	FirstApply, Tail time.Duration
	// Alloc is what the child allocated during the first convergence, in
	// MiB, and GCs the garbage collections it ran meanwhile: unlike its
	// CPU time, neither depends on how busy the machine is.
	Alloc float64
	GCs   uint32
	// PrerenderCPU is the child's CPU time for rendering every target
	// before the first convergence, when asked to.
	PrerenderCPU time.Duration
}

// runGyreChild runs gyre's phases of benchTenants for tenants
// prefix0..prefix<n-1> in a child process connected to this process's
// control plane, and returns what it measured. The child's output goes
// to this process's standard error; a child that fails fails b with it.
func runGyreChild(b *testing.B, dir, prefix string, n int, repo *gyrev1alpha1.Repository) gyreResult {
	task := gyreChild{
		Kubeconfig: testEnv.Cluster.Kubeconfig, QPS: testEnv.Config.QPS, Burst: testEnv.Config.Burst, Dir: dir, Prefix: prefix, Tenants: n,
		Repository: repo.Name, Result: filepath.Join(b.TempDir(), "result.json"),
		ProfileDir: os.Getenv(profileDirEnv), Prerender: os.Getenv(prerenderEnv) != "", ControlPlane: controlPlanePIDs(b),
	}
	data, err := json.Marshal(task)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestTenantReconcilerBenchChild$", "-test.v", "-test.timeout", "60m")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+string(data))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("gyre's phases in a child process: %v\n%s", err, out.String())
	}
	data, err = os.ReadFile(task.Result)
	if err != nil {
		b.Fatalf("gyre's phases in a child process left no result: %v\n%s", err, out.String())
	}
	var res gyreResult
	if err := json.Unmarshal(data, &res); err != nil {
		b.Fatal(err)
	}
	return res
}

// TestTenantReconcilerBenchChild is the child process of runGyreChild;
// without its task in the environment it is skipped.
func TestTenantReconcilerBenchChild(t *testing.T) {
	var task gyreChild
	if err := json.Unmarshal([]byte(os.Getenv(benchChildEnv)), &task); err != nil {
		t.Skip("the child process of BenchmarkTenantReconciler; runs only in it")
	}
	g := NewWithT(t)
	res := gyrePhases(t, g, task)
	data, err := json.Marshal(res)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(task.Result, data, 0o600)).To(Succeed())
}

// connectBenchChild points testEnv at the control plane of the process
// that started this one, instead of a control plane of its own.
func connectBenchChild() error {
	var task gyreChild
	if err := json.Unmarshal([]byte(os.Getenv(benchChildEnv)), &task); err != nil {
		return fmt.Errorf("%s: %w", benchChildEnv, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", task.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = task.QPS, task.Burst
	if testEnv.Scheme, err = mgrconfig.NewScheme(); err != nil {
		return err
	}
	testEnv.Config = cfg
	testEnv.Client, err = client.New(cfg, client.Options{Scheme: testEnv.Scheme})
	return err
}

// gyrePhases converges task's Tenants with a tenant reconciler started as
// `gyre controller` starts it, then checks every Tenant with nothing to
// change, in the running controller and in a freshly started one.
func gyrePhases(t *testing.T, g *WithT, task gyreChild) gyreResult {
	ctx := context.Background()
	repo := &gyrev1alpha1.Repository{}
	g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Name: task.Repository}, repo)).To(Succeed())
	var res gyreResult

	writes := &writeCounter{kinds: map[string]int{}}
	clk := clocktesting.NewFakeClock(time.Now())
	rec, stop := startBenchController(g, task.Dir, writes, clk)
	if task.Prerender {
		cpu := processCPU()
		prerender(g, rec, repo, task)
		res.PrerenderCPU = processCPU() - cpu
	}
	stopProfile := profileCPU(g, task.ProfileDir, "gyre-cpu.prof")
	var memBefore, memAfter runtime.MemStats
	runtime.ReadMemStats(&memBefore)
	cpuBefore, cpBefore := processCPU(), controlPlaneCPU(t, task.ControlPlane)
	writes.firstApply.Store(0)
	began := time.Now()
	res.First = converge(g, repo, task.Prefix, task.Tenants)
	res.FirstApply = time.Duration(writes.firstApply.Load() - began.UnixNano())
	res.Tail = began.Add(res.First).Sub(time.Unix(0, writes.lastApply.Load()))
	res.CPU, res.ControlPlaneCPU = processCPU()-cpuBefore, controlPlaneCPU(t, task.ControlPlane)-cpBefore
	runtime.ReadMemStats(&memAfter)
	res.Alloc, res.GCs = float64(memAfter.TotalAlloc-memBefore.TotalAlloc)/(1<<20), memAfter.NumGC-memBefore.NumGC
	stopProfile()
	res.Requests = writes.requests.Load()
	writes.mu.Lock()
	res.Kinds = writes.kinds
	writes.kinds = nil
	writes.mu.Unlock()
	for _, w := range writes.take() {
		if strings.Contains(w, "/tenants/"+task.Prefix) && strings.HasSuffix(w, "/status") {
			res.StatusWrites++
		}
	}
	var err error
	res.RSS, err = procStatusMiB("VmRSS")
	g.Expect(err).NotTo(HaveOccurred())
	res.PeakRSS, err = procStatusMiB("VmHWM")
	g.Expect(err).NotTo(HaveOccurred())
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.Heap = float64(ms.HeapAlloc) / (1 << 20)
	if task.ProfileDir != "" {
		f, err := os.Create(filepath.Join(task.ProfileDir, "gyre-heap.prof"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pprof.Lookup("heap").WriteTo(f, 0)).To(Succeed())
		g.Expect(f.Close()).To(Succeed())
	}

	// A full check of every tenant in the running controller: what the
	// periodic safety net does.
	settleBench()
	writes.take()
	requests := writes.requests.Load()
	res.Check = fullCheck(ctx, g, rec, clk, task)
	res.CheckRequests = writes.requests.Load() - requests
	res.CheckWrites = withoutLeases(writes.take())
	if task.ProfileDir != "" {
		// One check is over in a tenth of a second, too short for the
		// profiler's 100 samples a second to say where it went.
		stopProfile := profileCPU(g, task.ProfileDir, "gyre-check.prof")
		for range checkProfileRounds {
			fullCheck(ctx, g, rec, clk, task)
		}
		stopProfile()
	}
	stop()

	// The same in a freshly started controller, whose caches start empty.
	settleBench()
	writes.take()
	before := reconcileCount(g)
	restartStart := time.Now()
	_, stop = startBenchController(g, task.Dir, writes, clock.RealClock{})
	g.Eventually(func() float64 { return reconcileCount(g) - before }).WithTimeout(5 * time.Minute).WithPolling(20 * time.Millisecond).
		Should(BeNumerically(">=", task.Tenants))
	res.Restart = time.Since(restartStart)
	settleBench()
	stop()
	res.RestartWrites = withoutLeases(writes.take())
	res.LifePeakRSS, err = procStatusMiB("VmHWM")
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("gyre's first convergence: %s, %s of CPU, %.0f MiB resident", res.First, res.CPU, res.RSS)
	return res
}

// prerender renders every target of task's Tenants with rec's Renderer,
// as rec's first convergence will, one after another.
func prerender(g *WithT, rec *TenantReconciler, repo *gyrev1alpha1.Repository, task gyreChild) {
	ctx := context.Background()
	for i := range task.Tenants {
		t := benchTenant(fmt.Sprintf("%s%d", task.Prefix, i), repo)
		for _, rt := range render.TargetsForTenant(t) {
			res, err := rec.Renderer.Render(ctx, task.Dir, rt, render.Options{AllowedKinds: t.Spec.AllowedKinds, Limits: renderLimits(repo)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Err()).NotTo(HaveOccurred())
		}
	}
}

// controlPlanePIDs returns the processes of testEnv's control plane.
func controlPlanePIDs(tb testing.TB) []int {
	pids, err := testcluster.ControlPlanePIDs()
	if err != nil {
		tb.Fatal(err)
	}
	return pids
}

// controlPlaneCPU returns the CPU time the control plane's processes pids
// have used so far.
func controlPlaneCPU(tb testing.TB, pids []int) time.Duration {
	cpu, err := testcluster.ProcessesCPU(pids)
	if err != nil {
		tb.Fatal(err)
	}
	return cpu
}

// checkProfileRounds is how many full checks gyre-check.prof profiles.
const checkProfileRounds = 50

// fullCheck makes a full check of every one of task's Tenants due and
// reconciles them all, as many at once as the controller would, and
// returns how long that took: what the periodic safety net costs. Each
// of the controller's workers is a goroutine that takes one Tenant after
// another, so here too: a goroutine per Tenant would grow a new stack
// for each, which the controller does not, and which was a tenth of the
// check's CPU.
func fullCheck(ctx context.Context, g *WithT, rec *TenantReconciler, clk *clocktesting.FakeClock, task gyreChild) time.Duration {
	clk.Step(defaultInterval)
	start := time.Now()
	names := make(chan string, task.Tenants)
	for i := range task.Tenants {
		names <- fmt.Sprintf("%s%d", task.Prefix, i)
	}
	close(names)
	eg := &errgroup.Group{}
	for range rec.MaxConcurrentReconciles {
		eg.Go(func() error {
			for name := range names {
				if _, err := rec.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Expect(eg.Wait()).To(Succeed())
	return time.Since(start)
}

// profileCPU profiles this process's CPU into dir/name until the
// returned function is called; with no dir, it does nothing.
func profileCPU(g *WithT, dir, name string) func() {
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pprof.StartCPUProfile(f)).To(Succeed())
	return func() {
		pprof.StopCPUProfile()
		g.Expect(f.Close()).To(Succeed())
	}
}
