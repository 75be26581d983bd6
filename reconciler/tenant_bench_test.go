package reconciler

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/fsutil"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/render"
	"github.com/gyreops/gyre/tenants"
)

// dirArtifacts serves every Repository from one directory.
type dirArtifacts string

func (d dirArtifacts) ArtifactDir(*gyrev1alpha1.Repository) (string, error) { return string(d), nil }

// benchRepo writes a repository of tenants named prefix0..prefix<n-1>,
// each with a base of 10 Stages and 10 ConfigMaps and two suffixed
// per-cluster overlays: 20 objects per target.
func benchRepo(b testing.TB, dir, prefix string, n int) {
	write := func(p, content string) {
		if err := fsutil.WriteFile(filepath.Join(dir, p), []byte(content)); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		t := fmt.Sprintf("tenants/%s%d/", prefix, i)
		var objs bytes.Buffer
		for j := range 10 {
			fmt.Fprintf(&objs, "---\napiVersion: cyclone.dev/v1alpha1\nkind: Stage\nmetadata:\n  name: stage%d\nspec:\n  pod:\n    spec:\n      containers:\n      - name: main\n        image: golang:1.27\n        command: [go, test, ./pkg%d/...]\n", j, j)
			fmt.Fprintf(&objs, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config%d\ndata:\n  key: value%d\n", j, j)
		}
		write(t+"base/objects.yaml", objs.String())
		write(t+"base/kustomization.yaml", "resources:\n- objects.yaml\n")
		for _, c := range []string{"one", "two"} {
			write(t+c+"/kustomization.yaml", "resources:\n- ../base\nnameSuffix: -"+c+"\n")
		}
	}
}

// BenchmarkTenantReconciler measures 50 tenants × 2 targets × 20 objects:
// the first convergence against raw concurrent server-side apply (and
// kubectl apply --server-side) of the same objects, and against a replay
// of every write the convergence makes, with no controller, once before
// gyre's phase and once after it (gyre/ceiling-rate); then a full check
// of every tenant with nothing to change, in the running controller and
// in a freshly started one.
//
// gyre runs in a process of its own (runGyreChild), whose memory is then
// gyre's alone. The control plane runs on half of the CPUs and the
// benchmark and gyre on the other half (testcluster.PinApartFor), as when
// gyre runs on a node of its own: on a small machine gyre's CPU would
// otherwise come out of the API server's, which the raw phases' client
// barely uses, and gyre/ceiling-rate would measure the machine. Set
// GYRE_BENCH_SHARED_CPUS=1 to share them, GYRE_BENCH_PROFILE_DIR to
// profile gyre's first convergence, GYRE_BENCH_NEIGHBOUR to replay beside
// a process as busy as gyre (see neighbourEnv), GYRE_BENCH_PRERENDER to
// render every target before gyre's convergence (see prerenderEnv),
// GYRE_BENCH_FLOOR_WATCHES to replay with gyre's watches open (see
// floorWatchesEnv). Run it with
//
//	go test ./reconciler -run '^$' -bench BenchmarkTenantReconciler -benchtime 1x
func BenchmarkTenantReconciler(b *testing.B) {
	benchTenants(b, 50, benchPrefixes{gyre: "bench", raw: "raw", kubectl: "kubectl", floor: "floor", after: "after"})
}

// BenchmarkTenantReconcilerScale is BenchmarkTenantReconciler at 500
// tenants × 2 targets × 20 objects, 20,000 objects, without the kubectl
// phase, which would only repeat the raw one at this size. rss-MiB is gyre's
// process's VmRSS once it converged, peak-rss-MiB its VmHWM then,
// life-peak-rss-MiB its VmHWM after the no-op checks too, and heap-MiB the
// live heap after a collection. gyre-alloc-MiB and gyre-gc-cycles are what
// gyre's process allocated and collected in its first convergence: they
// tell a change in gyre's own work from a change in the machine's speed,
// which moves gyre-cpu-s as much. gyre-first-apply-s is how long after
// the convergence began gyre sent its first object apply, gyre-tail-s how
// long before it ended its last: the start-up and the end that a replay of
// the same writes does not have. The raw phases apply their objects with
// the tenant label renamed, so gyre's caches hold only its own tenants'
// objects. Run it with -v to see
// the first convergence's requests by kind:
//
//	go test ./reconciler -run '^$' -bench BenchmarkTenantReconcilerScale -benchtime 1x -timeout 60m
func BenchmarkTenantReconcilerScale(b *testing.B) {
	benchTenants(b, 500, benchPrefixes{gyre: "scale", raw: "sraw", floor: "sfloor", after: "safter"})
}

// benchPrefixes name the tenants of each phase of benchTenants; none may
// be a prefix of another. No kubectl prefix skips the kubectl phase. floor
// names the floor phase before gyre's, after the one after it.
type benchPrefixes struct{ gyre, raw, kubectl, floor, after string }

// benchTenants runs the phases of BenchmarkTenantReconciler for
// tenantCount tenants.
func benchTenants(b *testing.B, tenantCount int, p benchPrefixes) {
	g := NewWithT(b)
	testEnv.Cluster.PinApartFor(b)
	ctx := context.Background()
	dir := b.TempDir()
	for _, prefix := range []string{p.gyre, p.raw, p.kubectl, p.floor, p.after} {
		if prefix != "" {
			benchRepo(b, dir, prefix, tenantCount)
		}
	}
	repo := benchRepository(b, g)
	defer cleanupBench(p, tenantCount, repo)

	// Raw concurrent server-side apply of the same 2,000 objects.
	raw := renderAll(b, dir, p.raw, tenantCount)
	rawStart := time.Now()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(40)
	for i := range tenantCount {
		ns := &unstructured.Unstructured{}
		ns.SetAPIVersion("v1")
		ns.SetKind("Namespace")
		ns.SetName(fmt.Sprintf("cyclone-%s%d", p.raw, i))
		g.Expect(testEnv.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(ns), client.FieldOwner("raw"), client.ForceOwnership)).To(Succeed())
	}
	for _, o := range raw {
		eg.Go(func() error {
			return testEnv.Client.Apply(ectx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("raw"), client.ForceOwnership)
		})
	}
	g.Expect(eg.Wait()).To(Succeed())
	rawTime := time.Since(rawStart)

	// kubectl apply --server-side of the same number of objects.
	raw = nil
	var kubectlTime time.Duration
	if root, err := testcluster.RepoRoot(); err == nil && p.kubectl != "" {
		var buf bytes.Buffer
		for i := range tenantCount {
			fmt.Fprintf(&buf, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: cyclone-%s%d\n", p.kubectl, i)
		}
		g.Expect(render.WriteYAML(&buf, renderAll(b, dir, p.kubectl, tenantCount))).To(Succeed())
		file := filepath.Join(b.TempDir(), "all.yaml")
		g.Expect(os.WriteFile(file, buf.Bytes(), 0o644)).To(Succeed())
		kstart := time.Now()
		cmd := exec.Command(filepath.Join(root, "bin", "kubectl"), "--kubeconfig", testEnv.Cluster.Kubeconfig, "apply", "--server-side", "-f", file)
		out, err := cmd.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
		kubectlTime = time.Since(kstart)
	}

	// The same objects again, raw, with every other write the first
	// convergence asks of gyre: the ceiling of gyre/raw-rate. The API
	// server slows as the phases fill it: four such phases in a row at
	// 500 tenants took 47, 54, 64 and 72 s. So this phase runs once
	// before gyre's and once after it, and gyre is held to their mean,
	// which is what the same writes cost at gyre's place in the run.
	floorBefore, floorBeforeCP := rawWithTenantWrites(b, g, dir, p.floor, tenantCount, repo)

	// gyre: first convergence, the no-op check and the restart, in a
	// process of its own (see gyreChild).
	b.ResetTimer()
	res := runGyreChild(b, dir, p.gyre, tenantCount, repo)
	b.StopTimer()
	floorAfter, floorAfterCP := rawWithTenantWrites(b, g, dir, p.after, tenantCount, repo)
	floorCP := (floorBeforeCP + floorAfterCP) / 2
	floorTime := (floorBefore + floorAfter) / 2
	logRequestKinds(b, res.Kinds, float64(tenantCount*40))
	gyreTime, gyreCPU, checkTime, restartTime := res.First, res.CPU, res.Check, res.Restart

	objects := float64(tenantCount * 40)
	b.ReportMetric(gyreTime.Seconds(), "gyre-first-s")
	b.ReportMetric(objects/gyreTime.Seconds(), "gyre-obj/s")
	b.ReportMetric(float64(res.Requests)/objects, "gyre-requests/obj")
	b.ReportMetric(gyreCPU.Seconds(), "gyre-cpu-s")
	b.ReportMetric(res.Alloc, "gyre-alloc-MiB")
	b.ReportMetric(res.FirstApply.Seconds(), "gyre-first-apply-s")
	b.ReportMetric(res.Tail.Seconds(), "gyre-tail-s")
	b.ReportMetric(float64(res.GCs), "gyre-gc-cycles")
	b.ReportMetric(rawTime.Seconds(), "raw-ssa-s")
	b.ReportMetric(objects/rawTime.Seconds(), "raw-obj/s")
	b.ReportMetric(rawTime.Seconds()/gyreTime.Seconds(), "gyre/raw-rate")
	if kubectlTime > 0 {
		b.ReportMetric(kubectlTime.Seconds(), "kubectl-s")
	}
	b.ReportMetric(floorTime.Seconds(), "raw-with-tenant-writes-s")
	b.ReportMetric(floorBefore.Seconds(), "floor-before-s")
	b.ReportMetric(floorAfter.Seconds(), "floor-after-s")
	// raw and the floor before gyre run one after the other.
	b.ReportMetric(rawTime.Seconds()/floorBefore.Seconds(), "ceiling-rate")
	b.ReportMetric(floorTime.Seconds()/gyreTime.Seconds(), "gyre/ceiling-rate")
	// What the API server and etcd spent on the same writes, from
	// gyre and from the floor: over 1, gyre asks them for more work.
	b.ReportMetric(res.ControlPlaneCPU.Seconds(), "gyre-control-plane-cpu-s")
	b.ReportMetric(floorCP.Seconds(), "floor-control-plane-cpu-s")
	b.ReportMetric(res.ControlPlaneCPU.Seconds()/floorCP.Seconds(), "gyre/floor-control-plane-cpu")
	b.ReportMetric(float64(checkTime.Microseconds())/1000, "noop-ms")
	b.ReportMetric(float64(res.CheckRequests), "noop-requests")
	b.ReportMetric(float64(len(res.CheckWrites)), "noop-writes")
	b.ReportMetric(objects, "objects")
	b.ReportMetric(float64(res.StatusWrites)/float64(tenantCount), "status-writes/tenant")
	b.ReportMetric(res.RSS, "rss-MiB")
	b.ReportMetric(res.PeakRSS, "peak-rss-MiB")
	b.ReportMetric(res.LifePeakRSS, "life-peak-rss-MiB")
	b.ReportMetric(res.Heap, "heap-MiB")
	if res.PrerenderCPU > 0 {
		b.ReportMetric(res.PrerenderCPU.Seconds(), "prerender-cpu-s")
	}
	b.ReportMetric(restartTime.Seconds(), "restart-noop-s")
	b.ReportMetric(float64(len(res.RestartWrites)), "restart-noop-writes")
	if len(res.CheckWrites)+len(res.RestartWrites) > 0 {
		b.Logf("writes of the no-op checks: %v %v", res.CheckWrites, res.RestartWrites)
	}
}

// BenchmarkTenantReconcilerMemory converges 250 tenants × 2 targets × 20
// objects, 10,000 objects, and reports the process's live heap and
// resident memory once they are applied. Run it with -benchtime 1x.
func BenchmarkTenantReconcilerMemory(b *testing.B) {
	const tenantCount = 250
	g := NewWithT(b)
	dir := b.TempDir()
	benchRepo(b, dir, "mem", tenantCount)
	repo := benchRepository(b, g)
	defer cleanupBench(benchPrefixes{gyre: "mem"}, tenantCount, repo)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc

	_, stop := startBenchController(g, dir, &writeCounter{}, clock.RealClock{})
	defer stop()
	b.ResetTimer()
	elapsed := converge(g, repo, "mem", tenantCount)
	b.StopTimer()
	settleBench()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(elapsed.Seconds(), "first-s")
	b.ReportMetric(float64(tenantCount*40)/elapsed.Seconds(), "obj/s")
	b.ReportMetric(float64(ms.HeapAlloc-heapBefore)/(1<<20), "controller-heap-MB")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "process-heap-MB")
	if rss, err := procStatusMiB("VmRSS"); err == nil {
		b.ReportMetric(rss, "process-rss-MB")
	}
}

// rawWithTenantWrites applies the objects of tenants prefix0..prefix<n-1>
// raw, as the raw phase does, and makes alongside every other write that
// gyre's first convergence makes for a Tenant: it provisions the tenant's
// namespaces, ServiceAccount, Role and RoleBinding, creates the Tenant,
// adds the finalizer, writes the status once (Ready with both
// inventories: a new Tenant gets no separate progress write) and records three events (Provisioned and one
// Applied per target). It costs the API server what gyre's convergence
// costs it when gyre itself costs nothing, so raw time over its time is
// the best gyre/raw-rate this cluster allows. It returns how long that
// took, and the control plane's CPU time meanwhile. The Tenants are
// suspended, and deleted again before it returns.
func rawWithTenantWrites(b *testing.B, g *WithT, dir, prefix string, n int, repo *gyrev1alpha1.Repository) (time.Duration, time.Duration) {
	ctx := context.Background()
	c := testEnv.Client
	r := render.NewRenderer()
	apply := func(ctx context.Context, o *unstructured.Unstructured) error {
		return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("raw"), client.ForceOwnership)
	}
	var provisioning, objects []*unstructured.Unstructured
	tenantsOf := make([]*gyrev1alpha1.Tenant, n)
	targets := make([][]gyrev1alpha1.TargetStatus, n)
	for i := range n {
		t := benchTenant(fmt.Sprintf("%s%d", prefix, i), repo)
		t.Spec.Suspend = true
		tenantsOf[i] = t
		worker, err := tenants.WorkerObjects(t)
		g.Expect(err).NotTo(HaveOccurred())
		provisioning = append(provisioning, withoutTenantLabel(tenants.ControlObjects(t))...)
		provisioning = append(provisioning, withoutTenantLabel(worker)...)
		for _, cluster := range []string{"one", "two"} {
			res, err := r.Render(ctx, dir, render.Target{Tenant: t.Name, Cluster: cluster}, render.Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Err()).NotTo(HaveOccurred())
			objects = append(objects, withoutTenantLabel(res.Objects)...)
			rev := repo.Status.Artifact.Revision
			ts := gyrev1alpha1.TargetStatus{Cluster: cluster, LastAppliedRevision: rev, LastAttemptedRevision: rev, Inventory: newInventory(res.Objects)}
			setConditions(&ts.Conditions, targetConditions(targetOutcome{phase: phaseApplied, revision: rev, objects: len(res.Objects)}, 1))
			targets[i] = append(targets[i], ts)
		}
	}
	tenantWrites := func(ctx context.Context, t *gyrev1alpha1.Tenant, targets []gyrev1alpha1.TargetStatus) error {
		if err := c.Create(ctx, t); err != nil {
			return err
		}
		orig := t.DeepCopy()
		t.Finalizers = []string{convention.TenantFinalizer}
		if err := c.Patch(ctx, t, client.MergeFrom(orig)); err != nil {
			return err
		}
		for _, reason := range []string{"Provisioned", "Applied", "Applied"} {
			ev := &eventsv1.Event{
				ObjectMeta:          metav1.ObjectMeta{GenerateName: t.Name + "-", Namespace: metav1.NamespaceDefault},
				EventTime:           metav1.NowMicro(),
				ReportingController: "raw", ReportingInstance: "raw",
				Action: reason, Reason: reason, Type: corev1.EventTypeNormal,
				Regarding: corev1.ObjectReference{APIVersion: gyrev1alpha1.GroupVersion.String(), Kind: "Tenant", Name: t.Name, UID: t.UID},
				Note:      fmt.Sprintf("%s %s: 20 objects", reason, t.Name),
			}
			if err := c.Create(ctx, ev); err != nil {
				return err
			}
		}
		orig = t.DeepCopy()
		t.Status.Targets = targets
		setConditions(&t.Status.Conditions, tenantConditions(targets, nil, 1))
		t.Status.LastAppliedRevision, t.Status.Objects = summary(targets)
		t.Status.ObservedGeneration = 1
		return c.Status().Patch(ctx, t, client.MergeFrom(orig))
	}

	stopWatches := startFloorWatches(b, g)
	pids := controlPlanePIDs(b)
	nb := startNeighbour(b)
	cp, self := controlPlaneCPU(b, pids), controlPlaneCPU(b, []int{os.Getpid()})
	start := time.Now()
	// Namespaces first: what goes in them cannot be created before.
	for _, namespaces := range []bool{true, false} {
		eg, ectx := errgroup.WithContext(ctx)
		eg.SetLimit(40)
		for _, o := range provisioning {
			if (o.GetKind() == "Namespace") == namespaces {
				eg.Go(func() error { return apply(ectx, o) })
			}
		}
		g.Expect(eg.Wait()).To(Succeed())
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(40)
	for i, t := range tenantsOf {
		eg.Go(func() error { return tenantWrites(ectx, t, targets[i]) })
	}
	for _, o := range objects {
		eg.Go(func() error { return apply(ectx, o) })
	}
	g.Expect(eg.Wait()).To(Succeed())
	elapsed, cpu := time.Since(start), controlPlaneCPU(b, pids)-cp
	stopWatches()
	// The replay's client shares the benchmark's CPUs with gyre's
	// process, which is idle meanwhile: what a neighbour should add to
	// make them as busy as gyre makes them.
	b.Logf("replay %s: %.1f s; its client used %.2f of a CPU", prefix, elapsed.Seconds(), (controlPlaneCPU(b, []int{os.Getpid()})-self).Seconds()/elapsed.Seconds())
	if nb != nil {
		b.Logf("replay %s: the neighbour used %.2f of a CPU", prefix, nb.stop())
	}

	for _, t := range tenantsOf {
		g.Expect(c.Patch(ctx, t, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
		g.Expect(c.Delete(ctx, t)).To(Succeed())
	}
	return elapsed, cpu
}

// benchRepository creates a suspended Repository whose artifact the
// benchmarks' dirArtifacts serve.
func benchRepository(b *testing.B, g *WithT) *gyrev1alpha1.Repository {
	ctx := context.Background()
	repo := &gyrev1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}, Spec: gyrev1alpha1.RepositorySpec{URL: "https://example.invalid/x.git", Suspend: true}}
	g.Expect(testEnv.Client.Create(ctx, repo)).To(Succeed())
	repo.Status.Artifact = &gyrev1alpha1.Artifact{Revision: "main@sha1:" + fmt.Sprintf("%040d", 1)}
	g.Expect(testEnv.Client.Status().Update(ctx, repo)).To(Succeed())
	return repo
}

// startBenchController runs a tenant reconciler as `gyre controller` does,
// its requests counted by writes.
func startBenchController(g *WithT, dir string, writes *writeCounter, clk clock.Clock) (*TenantReconciler, func()) {
	opts := mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0"}.Manager(testEnv.Scheme)
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(countingConfig(testEnv.Config, writes), opts)
	g.Expect(err).NotTo(HaveOccurred())
	rec := &TenantReconciler{Artifacts: dirArtifacts(dir), Clock: clk}
	g.Expect(rec.SetupWithManager(mgr)).To(Succeed())
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	return rec, func() { cancel(); g.Expect(<-done).To(Succeed()) }
}

// converge creates tenants prefix0..prefix<n-1> and waits until all are
// Ready with every object applied. It follows the Tenants with a watch:
// polling lists of 50 Tenants and their inventories would cost the API
// server and this process more than gyre's own status writes do.
func converge(g *WithT, repo *gyrev1alpha1.Repository, prefix string, n int) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	wc, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testEnv.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &gyrev1alpha1.TenantList{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { w.Stop() }()
	start := time.Now()
	// Created 40 at a time, as the ceiling phase creates its Tenants.
	var eg errgroup.Group
	eg.SetLimit(40)
	for i := range n {
		eg.Go(func() error {
			return testEnv.Client.Create(ctx, benchTenant(fmt.Sprintf("%s%d", prefix, i), repo))
		})
	}
	g.Expect(eg.Wait()).To(Succeed())
	converged := map[string]bool{}
	see := func(t *gyrev1alpha1.Tenant) {
		if !strings.HasPrefix(t.Name, prefix) {
			return
		}
		delete(converged, t.Name)
		if apimeta.IsStatusConditionTrue(t.Status.Conditions, meta.ReadyCondition) &&
			t.Status.LastAppliedRevision == repo.Status.Artifact.Revision && t.Status.Objects == 40 {
			converged[t.Name] = true
		}
	}
	for len(converged) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				// The API server ends a watch whose reader fell behind,
				// as a busy benchmark process may: list, and go on from
				// there.
				list := &gyrev1alpha1.TenantList{}
				g.Expect(wc.List(ctx, list)).To(Succeed())
				for i := range list.Items {
					see(&list.Items[i])
				}
				w, err = wc.Watch(ctx, &gyrev1alpha1.TenantList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
				g.Expect(err).NotTo(HaveOccurred())
				continue
			}
			if t, isTenant := ev.Object.(*gyrev1alpha1.Tenant); isTenant {
				see(t)
			}
		case <-ctx.Done():
			g.Expect(ctx.Err()).NotTo(HaveOccurred(), "%d of %d tenants converged", len(converged), n)
		}
	}
	return time.Since(start)
}

// benchTenant is the Tenant named name of the benchmarks: two targets, on
// clusters one and two, from repo.
func benchTenant(name string, repo *gyrev1alpha1.Repository) *gyrev1alpha1.Tenant {
	return &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: repo.Name},
			Clusters:      []gyrev1alpha1.TenantCluster{{Name: "one"}, {Name: "two"}},
		},
	}
}

// cleanupBench deletes what the benchmarks made, so other benchmarks and
// tests start from nothing. No controller runs by then, so the Tenants'
// finalizers are taken off by hand.
func cleanupBench(p benchPrefixes, n int, repo *gyrev1alpha1.Repository) {
	ctx := context.Background()
	for i := range n {
		t := &gyrev1alpha1.Tenant{}
		if err := testEnv.Client.Get(ctx, client.ObjectKey{Name: fmt.Sprintf("%s%d", p.gyre, i)}, t); err == nil {
			t.Finalizers = nil
			_ = testEnv.Client.Update(ctx, t)
			_ = testEnv.Client.Delete(ctx, t)
		}
		for _, prefix := range []string{p.raw, p.kubectl, p.floor, p.after} {
			if prefix != "" {
				_ = testEnv.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cyclone-%s%d", prefix, i)}})
			}
		}
		for _, prefix := range []string{p.floor, p.after} {
			if prefix != "" {
				_ = testEnv.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cyclone-%s%d-worker", prefix, i)}})
			}
		}
	}
	_ = testEnv.Client.Delete(ctx, repo)
}

// settleBench lets watch events of the last writes arrive.
func settleBench() { time.Sleep(2 * time.Second) }

func withoutLeases(writes []string) []string {
	var out []string
	for _, w := range writes {
		if !strings.Contains(w, "/leases/") {
			out = append(out, w)
		}
	}
	return out
}

// procStatusMiB reads a size field of /proc/self/status, such as VmRSS
// (resident now) or VmHWM (resident at most), in MiB.
func procStatusMiB(field string) (float64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f kB", &kb); err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// renderAll renders both targets of tenants prefix0..prefix<n-1>.
func renderAll(b *testing.B, dir, prefix string, n int) []*unstructured.Unstructured {
	r := render.NewRenderer()
	var all []*unstructured.Unstructured
	for i := range n {
		for _, c := range []string{"one", "two"} {
			res, err := r.Render(context.Background(), dir, render.Target{Tenant: fmt.Sprintf("%s%d", prefix, i), Cluster: c}, render.Options{})
			if err != nil || res.Err() != nil {
				b.Fatal(err, res.Err())
			}
			all = append(all, withoutTenantLabel(res.Objects)...)
		}
	}
	return all
}

// reconcileCount is how many Tenant reconciles the process has finished.
func reconcileCount(g Gomega) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "tenant" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// logRequestKinds logs the first convergence's requests per object by
// method and resource, most first.
func logRequestKinds(b *testing.B, kinds map[string]int, objects float64) {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if kinds[names[i]] != kinds[names[j]] {
			return kinds[names[i]] > kinds[names[j]]
		}
		return names[i] < names[j]
	})
	var buf strings.Builder
	for _, k := range names {
		fmt.Fprintf(&buf, "\n  %6d %.3f/obj %s", kinds[k], float64(kinds[k])/objects, k)
	}
	b.Logf("requests of the first convergence:%s", buf.String())
}

// withoutTenantLabel renames the tenant label of objs, which the raw
// phases apply, so that the controller's caches, which select on it, hold
// only the objects of the tenants it converges, as they would in a
// cluster of its own. The label keeps its length, and the objects get
// gyre's digest annotation, so that the raw phases write as many bytes as
// gyre does.
func withoutTenantLabel(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	for _, o := range objs {
		l := o.GetLabels()
		if v, ok := l[convention.TenantLabel]; ok {
			delete(l, convention.TenantLabel)
			l[rawTenantLabel] = v
		}
		o.SetLabels(l)
		if err := apply.Stamp(o); err != nil {
			panic(err) // objects that rendered have a digest
		}
	}
	return objs
}

// rawTenantLabel stands for convention.TenantLabel in the raw phases: a
// key of the same length that no cache of gyre selects on.
const rawTenantLabel = "gyre.dev/rawten"

// processCPU is the CPU time this process has used, user and system: in
// the first convergence, gyre's, whose cores the API server and etcd
// share on the benchmark's machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
