package exec

import (
	"context"
	"maps"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	// env is the control cluster every test shares; each test works in
	// namespaces of its own.
	env    *testcluster.Cluster
	scheme = runtime.NewScheme()
	k8s    client.WithWatch
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := cyclonev1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := gyrev1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	// In -short mode only the pure unit tests run; the others skip
	// (requireCluster).
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, ControllerManager: true, Nodes: 2}, func(c *testcluster.Cluster) (err error) {
		env = c
		k8s, err = client.NewWithWatch(c.Config, client.Options{Scheme: scheme})
		return err
	}))
}

var bg = context.Background()

func key(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// requireCluster skips a test in -short mode, where no cluster runs.
func requireCluster(t testing.TB) {
	t.Helper()
	if env == nil {
		t.Skip("needs the test control plane; not started in -short mode")
	}
}

// testConfig is the engine configuration of the tests: GC Pods succeed at
// once under kwok, waits are short.
func testConfig() Config {
	return Config{
		GCPodAnnotations: map[string]string{testcluster.AnnotationResult: "succeed"},
		RetryBackoff:     200 * time.Millisecond,
		WaitInterval:     500 * time.Millisecond,
	}
}

// startEngine runs an engine with its own manager against restCfg until
// the returned stop is called (or the test ends).
func startEngine(t testing.TB, restCfg *rest.Config, cfg Config) (*Engine, func()) {
	t.Helper()
	return startEngineOn(t, restCfg, cfg, nil)
}

// startEngineWith starts an engine on the shared cluster with a fault
// hook.
func startEngineWith(t testing.TB, cfg Config, fault func(string) error) (*Engine, func()) {
	t.Helper()
	return startEngineOn(t, env.Config, cfg, func(e *Engine) { e.fault = fault })
}

func startEngineOn(t testing.TB, restCfg *rest.Config, cfg Config, setup func(*Engine)) (*Engine, func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// As `gyre controller` runs it.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Config: cfg}
	if setup != nil {
		setup(e) // its test hooks, before anything can call them
	}
	if err := e.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return e, stop
}

// newTenant makes a tenant namespace "cyclone-<tenant>" on the control
// cluster and its worker namespace with a bound tenant PVC on each of
// clusters, and returns the tenant namespace.
func newTenant(t testing.TB, clusters ...client.Client) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cyclone-t"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	tenant := Tenant(ns.Name)
	createTenant(t, tenant)
	for _, c := range append([]client.Client{k8s}, clusters...) {
		prepareWorker(t, c, tenant)
	}
	return ns.Name
}

// createTenant creates the Tenant a test namespace cyclone-<tenant>
// belongs to, without which the engine runs nothing there, at the default
// pod security level and on the control cluster; mutate changes it first.
func createTenant(t testing.TB, tenant string, mutate ...func(*gyrev1alpha1.Tenant)) *gyrev1alpha1.Tenant {
	t.Helper()
	tn := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: tenant},
		Spec:       gyrev1alpha1.TenantSpec{RepositoryRef: gyrev1alpha1.ObjectReference{Name: "pipelines"}},
	}
	for _, m := range mutate {
		m(tn)
	}
	if err := k8s.Create(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), tn) })
	return tn
}

// updateTenant changes the Tenant of a test namespace.
func updateTenant(t testing.TB, ns string, mutate func(*gyrev1alpha1.Tenant)) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		tn := &gyrev1alpha1.Tenant{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: Tenant(ns)}, tn)).To(Succeed())
		mutate(tn)
		g.Expect(k8s.Update(context.Background(), tn)).To(Succeed())
	}).Should(Succeed())
}

// setPodSecurity gives the Tenant of a test namespace a Pod Security
// level and labels its worker namespace as provisioning does, so that the
// API server enforces the level too.
func setPodSecurity(t testing.TB, ns, level string) {
	t.Helper()
	updateTenant(t, ns, func(tn *gyrev1alpha1.Tenant) { tn.Spec.PodSecurity = level })
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		worker := &corev1.Namespace{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: "cyclone-" + Tenant(ns) + "-worker"}, worker)).To(Succeed())
		if worker.Labels == nil {
			worker.Labels = map[string]string{}
		}
		maps.Copy(worker.Labels, podsecurity.NamespaceLabels(level))
		g.Expect(k8s.Update(context.Background(), worker)).To(Succeed())
	}).Should(Succeed())
}

// onClusters lists the ExecutionClusters a Tenant runs on.
func onClusters(names ...string) func(*gyrev1alpha1.Tenant) {
	return func(tn *gyrev1alpha1.Tenant) {
		tn.Spec.Clusters = nil
		for _, n := range names {
			tn.Spec.Clusters = append(tn.Spec.Clusters, gyrev1alpha1.TenantCluster{
				Name: n, ExecutionClusterRef: &gyrev1alpha1.ObjectReference{Name: n}})
		}
	}
}

// reservedPV is a hostPath PersistentVolume of 1Gi and no class, reserved
// for tenant's PVC, so that no other test's claim takes it.
func reservedPV(tenant string, mode corev1.PersistentVolumeAccessMode) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-" + tenant},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{mode},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + tenant}},
			ClaimRef:               &corev1.ObjectReference{Namespace: "cyclone-" + tenant + "-worker", Name: "cyclone-pvc-" + tenant},
		},
	}
}

// prepareWorker creates a tenant's worker namespace and PVC, bound to a
// hostPath PV, and waits until the volume binder has bound them: the
// scheduler does not place Pods with unbound claims.
func prepareWorker(t testing.TB, c client.Client, tenant string) {
	ctx := context.Background()
	g := NewWithT(t)
	worker := "cyclone-" + tenant + "-worker"
	pvcName := "cyclone-pvc-" + tenant
	pv := reservedPV(tenant, corev1.ReadWriteMany)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: pvcName, Namespace: worker},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			VolumeName:       pv.Name,
			StorageClassName: ptr.To(""),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: worker}})).To(Succeed())
	g.Expect(c.Create(ctx, pv)).To(Succeed())
	t.Cleanup(func() {
		ctx := context.Background()
		_ = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: worker}})
		_ = c.Delete(ctx, pv)
	})
	// A claim the binder sees before its volume is marked Lost for good.
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(pv), pv)).To(Succeed())
		g.Expect(pv.Status.Phase).NotTo(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(c.Create(ctx, pvc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// stage is a Stage whose Pod has the kwok fate annotations given as
// "key=value" pairs.
func stage(ns, name string, annotations map[string]string) *cyclonev1alpha1.Stage {
	return &cyclonev1alpha1.Stage{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: cyclonev1alpha1.StageSpec{Pod: &cyclonev1alpha1.PodWorkload{
			Meta: &cyclonev1alpha1.PodWorkloadMeta{Annotations: annotations},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"true"}}}},
		}},
	}
}

// succeed and friends are kwok fates.
func succeed(delay string) map[string]string {
	return map[string]string{testcluster.AnnotationResult: "succeed", testcluster.AnnotationDelay: delay}
}

func fail(delay string) map[string]string {
	return map[string]string{testcluster.AnnotationResult: "fail", testcluster.AnnotationDelay: delay}
}

// forever is a Pod that runs until deleted.
func forever() map[string]string { return map[string]string{} }

// workflow builds a Workflow from stage items and creates it and its
// Stages.
func createWorkflow(t testing.TB, ns, name string, stages []*cyclonev1alpha1.Stage, its []cyclonev1alpha1.StageItem, mutate ...func(*cyclonev1alpha1.Workflow)) *cyclonev1alpha1.Workflow {
	t.Helper()
	ctx := context.Background()
	for _, s := range stages {
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	wf := &cyclonev1alpha1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: cyclonev1alpha1.WorkflowSpec{Stages: its}}
	for _, m := range mutate {
		m(wf)
	}
	if err := k8s.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	return wf
}

func createRun(t testing.TB, ns, name, wf string, mutate ...func(*cyclonev1alpha1.WorkflowRun)) *cyclonev1alpha1.WorkflowRun {
	t.Helper()
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: wf}},
	}
	for _, m := range mutate {
		m(run)
	}
	if err := k8s.Create(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	return run
}

// getRun reads a run.
func getRun(g Gomega, ns, name string) *cyclonev1alpha1.WorkflowRun {
	run := &cyclonev1alpha1.WorkflowRun{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, run)).To(Succeed())
	return run
}

// waitRun waits until the run reaches phase and its data is cleaned (or
// GC finished), and returns it.
func waitRun(t testing.TB, ns, name string, phase cyclonev1alpha1.StatusPhase) *cyclonev1alpha1.WorkflowRun {
	t.Helper()
	return waitRunFor(t, ns, name, phase, 60*time.Second)
}

// waitRunFor is waitRun with a timeout of its own.
func waitRunFor(t testing.TB, ns, name string, phase cyclonev1alpha1.StatusPhase, timeout time.Duration) *cyclonev1alpha1.WorkflowRun {
	t.Helper()
	g := NewWithT(t)
	var run *cyclonev1alpha1.WorkflowRun
	g.Eventually(func(g Gomega) {
		run = getRun(g, ns, name)
		g.Expect(run.Status.Overall.Phase).To(Equal(phase), "overall: %+v", run.Status.Overall)
		g.Expect(run.Status.GC).NotTo(BeNil())
		g.Expect(run.Status.GC.Phase).NotTo(Equal(cyclonev1alpha1.GCRunning))
	}).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(Succeed())
	return run
}

// podEvent is one event of a Pod watch.
type podEvent struct {
	Type  watch.EventType
	Name  string
	Stage string
	Phase corev1.PodPhase
}

// podRecorder records every Pod event in a namespace, in the API server's
// order.
type podRecorder struct {
	mu     sync.Mutex
	events []podEvent
}

func recordPods(t testing.TB, c client.WithWatch, ns string) *podRecorder {
	t.Helper()
	w, err := c.Watch(context.Background(), &corev1.PodList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	rec := &podRecorder{}
	go func() {
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rec.mu.Lock()
			rec.events = append(rec.events, podEvent{Type: ev.Type, Name: pod.Name, Stage: pod.Annotations[convention.AnnotationStage], Phase: pod.Status.Phase})
			rec.mu.Unlock()
		}
	}()
	return rec
}

func (r *podRecorder) all() []podEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]podEvent(nil), r.events...)
}

// created returns the names of the Pods created, in order.
func (r *podRecorder) created() []string {
	var names []string
	for _, e := range r.all() {
		if e.Type == watch.Added {
			names = append(names, e.Name)
		}
	}
	return names
}
