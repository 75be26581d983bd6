package install

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/e2etest"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// What config/default installs.
const (
	systemNamespace = "gyre-system"
	deploymentName  = "gyre-controller"
	accountName     = "gyre-controller"
	managerName     = "manager"
	webhookService  = "gyre-webhook"
	metricsService  = "gyre-metrics"
	webService      = "gyre-web"
	leaseName       = "gyre-controller.gyre.dev"
)

// The tenant the tests' Repository provisions (testdata/pipelines).
const tenantName = "e2e"

// cluster is the package's control plane with a real node; nil when this
// machine cannot run one, and then every test skips.
var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if testcluster.RealNodeUnsupported() != nil && os.Getenv(testcluster.RequireRealNode) != "required" {
		os.Exit(m.Run())
	}
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, RealNode: true}, func(c *testcluster.Cluster) error {
		cluster = c
		return nil
	}))
}

// env is what the tests share: gyre installed from config/default, and a
// Repository and Tenant it has provisioned. Installing takes seconds, and
// each test would otherwise repeat it.
type env struct {
	admin client.Client
	cs    kubernetes.Interface
	// pvDir is the host directory of the tenant's PersistentVolume.
	pvDir string
}

var (
	envMu     sync.Mutex
	shared    *env
	envFailed bool
)

// setup installs gyre and its tenant once for the package, and returns
// them to each test.
func setup(t *testing.T) *env {
	t.Helper()
	testcluster.SkipWithoutRealNode(t)
	if cluster == nil {
		t.Fatal("the real node did not start")
	}
	envMu.Lock()
	defer envMu.Unlock()
	if envFailed {
		t.Fatal("installing gyre failed in an earlier test")
	}
	if shared == nil {
		envFailed = true
		shared = newEnv(t)
		envFailed = false
	}
	return shared
}

func newEnv(t *testing.T) *env {
	g := NewWithT(t)
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	e := &env{}
	e.admin, err = client.New(cluster.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	e.cs, err = kubernetes.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())

	start := time.Now()
	kubectlApply(t, writeOverlay(t))
	e.waitAvailable(t)
	t.Logf("measured: Deployment %s Available %s after kubectl apply -k", deploymentName, time.Since(start).Round(100*time.Millisecond))

	e.provisionTenant(t)
	return e
}

// writeOverlay writes the test's overlay of config/default and returns its
// directory. It changes only what this control plane needs: the GC Pod's
// image, which must be one the offline node has, and the API server's
// address. The kubelet points KUBERNETES_SERVICE_HOST at the kubernetes
// Service's ClusterIP, which only kube-proxy routes, and this node has
// none; the API server listens on the node's address instead.
func writeOverlay(t *testing.T) string {
	t.Helper()
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	api, err := url.Parse(cluster.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(api.Host)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cluster.Dir(), "install-overlay")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// kustomize takes no absolute path in resources.
	base, err := filepath.Rel(dir, filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
patches:
- target:
    kind: Deployment
    name: %s
  patch: |
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --gc-image=%s
    - op: add
      path: /spec/template/spec/containers/0/env
      value:
      - name: KUBERNETES_SERVICE_HOST
        value: %q
      - name: KUBERNETES_SERVICE_PORT
        value: %q
`, base, deploymentName, testcluster.BusyboxImage, host, port)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kubectlApply runs `kubectl apply -k dir` as an operator would.
func kubectlApply(t *testing.T, dir string) {
	t.Helper()
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", "kubectl"), "--kubeconfig", cluster.Kubeconfig, "apply", "-k", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -k %s: %v\n%s", dir, err, out)
	}
	t.Logf("kubectl apply -k:\n%s", out)
}

// waitAvailable waits until the Deployment is Available with every
// replica updated and ready.
func (e *env) waitAvailable(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(e.admin.Get(context.Background(), client.ObjectKey{Namespace: systemNamespace, Name: deploymentName}, d)).To(Succeed())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(d.Status.ReadyReplicas).To(Equal(*d.Spec.Replicas), "conditions: %+v", d.Status.Conditions)
		g.Expect(d.Status.UpdatedReplicas).To(Equal(*d.Spec.Replicas))
		g.Expect(d.Status.Replicas).To(Equal(*d.Spec.Replicas), "old replicas still terminating")
		available := false
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				available = true
			}
		}
		g.Expect(available).To(BeTrue(), "conditions: %+v", d.Status.Conditions)
	}).WithTimeout(3*time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(), "%s", e.controllerDiagnosis())
}

// controllerDiagnosis describes the controller's Pods and their log, for
// a failure message.
func (e *env) controllerDiagnosis() string {
	ctx := context.Background()
	pods, err := e.cs.CoreV1().Pods(systemNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: phase %s, conditions %+v, containers %+v\n", p.Name, p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses)
		logs, _ := e.cs.CoreV1().Pods(systemNamespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: managerName, TailLines: ptr.To[int64](40)}).DoRaw(ctx)
		fmt.Fprintf(&b, "log:\n%s\n", logs)
	}
	return b.String()
}

// controllerPods returns the Deployment's Pods that are not being deleted.
func (e *env) controllerPods(g Gomega) []corev1.Pod {
	pods, err := e.cs.CoreV1().Pods(systemNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=gyre"})
	g.Expect(err).NotTo(HaveOccurred())
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// controllerPod returns the one ready controller Pod once the Deployment
// is Available.
func (e *env) controllerPod(t *testing.T) corev1.Pod {
	t.Helper()
	e.waitAvailable(t)
	g := NewWithT(t)
	var pod corev1.Pod
	g.Eventually(func(g Gomega) {
		pods := e.controllerPods(g)
		g.Expect(pods).To(HaveLen(1))
		pod = pods[0]
		g.Expect(podReady(&pod)).To(BeTrue())
	}).WithTimeout(time.Minute).Should(Succeed())
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// provisionTenant serves the test's repositories from the node's address,
// where both gyre's Pod and the stage Pods reach them, and creates the
// Repository, the Tenant and, standing in for a storage provisioner, a
// hostPath volume for its PVC.
func (e *env) provisionTenant(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	root := filepath.Join(cluster.Dir(), "git")
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{Addr: net.JoinHostPort(cluster.NodeIP, "0")})
	g.Expect(err).NotTo(HaveOccurred())
	// The server lives as long as the package's cluster.
	app := gitserver.NewRepo(t, root, "app.git")
	app.CopyDir(filepath.Join("testdata", "app"))
	app.Commit("the app")
	app.Push()
	pipelines := gitserver.NewRepo(t, root, "pipelines.git")
	pipelines.CopyDir(filepath.Join("testdata", "pipelines"))
	manifest := filepath.Join("tenants", tenantName, "pipeline.yaml")
	b, err := os.ReadFile(filepath.Join("testdata", "pipelines", manifest))
	g.Expect(err).NotTo(HaveOccurred())
	pipelines.WriteFile(manifest, strings.ReplaceAll(string(b), "APP_URL", srv.URL+"/app.git"))
	pipelines.Commit("a pipeline")
	pipelines.Push()

	// gyre's helpers run as UID 65532 and count on fsGroup to make the
	// PVC theirs, which the kubelet does not do for hostPath (nor for
	// local or NFS volumes): such storage must let them write, as
	// local-path-provisioner's 0777 directories do.
	e.pvDir = filepath.Join(cluster.Dir(), "volumes", tenantName)
	g.Expect(os.MkdirAll(e.pvDir, 0o777)).To(Succeed())
	g.Expect(os.Chmod(e.pvDir, 0o777)).To(Succeed())
	repo := &gyrev1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "pipelines"}, Spec: gyrev1alpha1.RepositorySpec{
		URL:      srv.URL + "/pipelines.git",
		Interval: &metav1.Duration{Duration: time.Hour},
	}}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + tenantName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: e.pvDir, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
		},
	}
	tenant := &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: tenantName}, Spec: gyrev1alpha1.TenantSpec{
		RepositoryRef: gyrev1alpha1.ObjectReference{Name: repo.Name},
		Quota:         corev1.ResourceList{corev1.ResourcePods: resource.MustParse("20")},
		Storage:       &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
	}}
	for _, o := range []client.Object{repo, pv, tenant} {
		g.Expect(e.admin.Create(ctx, o)).To(Succeed())
	}
	long := func(f func(g Gomega)) {
		g.Eventually(f).WithTimeout(2*time.Minute).WithPolling(250*time.Millisecond).Should(Succeed(), "%s", e.controllerDiagnosis())
	}
	ready := func(conds []metav1.Condition) bool { return apimeta.IsStatusConditionTrue(conds, meta.ReadyCondition) }
	long(func(g Gomega) {
		got := &gyrev1alpha1.Repository{}
		g.Expect(e.admin.Get(ctx, client.ObjectKeyFromObject(repo), got)).To(Succeed())
		g.Expect(ready(got.Status.Conditions)).To(BeTrue(), "repository: %v", got.Status.Conditions)
	})
	long(func(g Gomega) {
		got := &gyrev1alpha1.Tenant{}
		g.Expect(e.admin.Get(ctx, client.ObjectKeyFromObject(tenant), got)).To(Succeed())
		g.Expect(ready(got.Status.Conditions)).To(BeTrue(), "tenant: %v", got.Status.Conditions)
	})
	long(func(g Gomega) {
		pvc := &corev1.PersistentVolumeClaim{}
		g.Expect(e.admin.Get(ctx, client.ObjectKey{Namespace: convention.WorkerNamespace(tenantName), Name: convention.PVCName(tenantName)}, pvc)).To(Succeed())
		g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
	})
}

// buildDeployment builds config/default as kubectl would and returns its
// Deployment: what the running Pod must match.
func buildDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatalf("build config/default: %v", err)
	}
	for _, r := range m.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		u, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Fatal("config/default has no Deployment")
	return nil
}

func container(spec *corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	return nil
}

func TestRealNodeInstall_runsGyreAsTheManifestsSay(t *testing.T) {
	e := setup(t)
	g := NewWithT(t)
	ctx := context.Background()
	want := buildDeployment(t)
	pod := e.controllerPod(t)

	wantCtr := container(&want.Spec.Template.Spec, managerName)
	g.Expect(wantCtr).NotTo(BeNil())
	g.Expect(wantCtr.Image).To(Equal(testcluster.GyreImage), "config/default names the image make image builds")
	gotCtr := container(&pod.Spec, managerName)
	g.Expect(gotCtr).NotTo(BeNil())
	g.Expect(gotCtr.Image).To(Equal(testcluster.GyreImage))
	g.Expect(gotCtr.ImagePullPolicy).To(Equal(corev1.PullIfNotPresent), "a node with the image never pulls it")

	// gyre runs as its ServiceAccount, with a token, under the restricted
	// security context and the resources of the manifest.
	g.Expect(pod.Spec.ServiceAccountName).To(Equal(accountName))
	g.Expect(pod.Spec.Volumes).To(ContainElement(HaveField("Projected", Not(BeNil()))), "the ServiceAccount's token is mounted")
	g.Expect(pod.Spec.SecurityContext.RunAsNonRoot).To(Equal(want.Spec.Template.Spec.SecurityContext.RunAsNonRoot))
	g.Expect(pod.Spec.SecurityContext.SeccompProfile).To(Equal(want.Spec.Template.Spec.SecurityContext.SeccompProfile))
	g.Expect(gotCtr.SecurityContext).To(Equal(wantCtr.SecurityContext))
	g.Expect(gotCtr.Resources.Requests).To(HaveLen(len(wantCtr.Resources.Requests)))
	for name, q := range wantCtr.Resources.Requests {
		got := gotCtr.Resources.Requests[name]
		g.Expect(got.Cmp(q)).To(BeZero(), "request %s", name)
	}
	for name, q := range wantCtr.Resources.Limits {
		got := gotCtr.Resources.Limits[name]
		g.Expect(got.Cmp(q)).To(BeZero(), "limit %s", name)
	}
	g.Expect(wantCtr.Resources.Requests).To(HaveKey(corev1.ResourceMemory))
	g.Expect(wantCtr.Resources.Limits).To(HaveKey(corev1.ResourceMemory))
	g.Expect(pod.Status.QOSClass).To(Equal(corev1.PodQOSBurstable))
	// The probes are the manifest's, and the readiness probe passed.
	g.Expect(gotCtr.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(gotCtr.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(podReady(&pod)).To(BeTrue())
	// The kernel runs the manager as the image's non-root user.
	g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
	g.Expect(pod.Status.ContainerStatuses[0].User).To(SatisfyAny(BeNil(),
		HaveField("Linux.UID", BeNumerically("==", 65532))))

	// The API server, not only the manifest, holds gyre-system to the
	// restricted standard: a Pod that runs as root is refused.
	ns := &corev1.Namespace{}
	g.Expect(e.admin.Get(ctx, client.ObjectKey{Name: systemNamespace}, ns)).To(Succeed())
	g.Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
	root := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "runs-as-root", Namespace: systemNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: testcluster.BusyboxImage,
			SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](0)},
		}}},
	}
	err := e.admin.Create(ctx, root, client.DryRunAll)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a root Pod in %s: %v", systemNamespace, err)
	g.Expect(err.Error()).To(ContainSubstring(`violates PodSecurity "restricted`))
}

func TestRealNodeInstall_runsAPipelineFromGit(t *testing.T) {
	e := setup(t)
	g := NewWithT(t)
	ctx := context.Background()
	controller := e.controllerPod(t)
	worker := convention.WorkerNamespace(tenantName)
	rec := recordPods(t, e.cs, worker)

	run := e2etest.StartRun(g, e.admin, convention.Namespace(tenantName), "ci-1", "ci")
	created := time.Now()
	got := e.waitRun(t, run, rec)
	t.Logf("measured: pipeline of 2 stages Succeeded and cleaned %s after the run was created (status: %s from start to completion)",
		time.Since(created).Round(100*time.Millisecond),
		got.Status.Overall.CompletionTime.Sub(got.Status.Overall.StartTime.Time))

	// The build stage cloned the app repository through gyre's resolver
	// and left a result; the check stage read the build's artifact.
	g.Expect(got.Status.Stages).To(HaveKey("build"))
	g.Expect(got.Status.Stages["build"].Outputs).To(ContainElement(cyclonev1alpha1.KeyValue{Key: "greeting", Value: "hello from the app repository"}))
	g.Expect(got.Status.Stages).To(HaveKey("check"))
	g.Expect(got.Status.Stages["check"].Outputs).To(ContainElement(cyclonev1alpha1.KeyValue{Key: "report", Value: "built from: hello from the app repository"}))

	// One Pod per stage and one GC Pod ran; all are gone, and so is the
	// run's data on the volume.
	pods := rec.forRun(run)
	g.Expect(pods).To(HaveLen(3), "%v", pods)
	kinds := map[string]int{}
	for _, p := range pods {
		kinds[p.Kind]++
		g.Expect(p.Phase).To(Equal(corev1.PodSucceeded), "pod %s", p.Name)
		g.Expect(p.Deleted).To(BeTrue(), "pod %s", p.Name)
	}
	g.Expect(kinds).To(Equal(map[string]int{"workload": 2, "gc": 1}))
	g.Expect(filepath.Join(e.pvDir, run.Name)).NotTo(BeAnExistingFile(), "the GC Pod removed the run's data")
	rec.report(t)

	// The controller never restarted, though its liveness probe has had
	// the time to fail it: the probe passes.
	probe := container(&controller.Spec, managerName).LivenessProbe
	window := time.Duration(probe.PeriodSeconds*probe.FailureThreshold)*time.Second + 5*time.Second
	unchanged := func(g Gomega) {
		now, err := e.cs.CoreV1().Pods(systemNamespace).Get(ctx, controller.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(now.UID).To(Equal(controller.UID))
		g.Expect(now.Status.ContainerStatuses[0].RestartCount).To(BeZero())
	}
	if left := window - time.Since(controller.Status.StartTime.Time); left > 0 {
		g.Consistently(unchanged).WithTimeout(left).WithPolling(time.Second).Should(Succeed())
	}
	unchanged(g)
}

// waitRun waits until run has Succeeded and its data is cleaned, and
// returns it.
func (e *env) waitRun(t *testing.T, run *cyclonev1alpha1.WorkflowRun, rec *podRecorder) *cyclonev1alpha1.WorkflowRun {
	t.Helper()
	g := NewWithT(t)
	got := &cyclonev1alpha1.WorkflowRun{}
	g.Eventually(func(g Gomega) {
		g.Expect(e.admin.Get(context.Background(), client.ObjectKeyFromObject(run), got)).To(Succeed())
		if got.Status.Overall.Phase == cyclonev1alpha1.StatusFailed {
			StopTrying(fmt.Sprintf("run failed: %+v", got.Status.Overall)).Now()
		}
		g.Expect(got.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "run: %+v", got.Status.Overall)
		g.Expect(got.Status.GC).NotTo(BeNil())
		g.Expect(got.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded))
		g.Expect(got.Status.Cleaned).To(BeTrue())
		for _, p := range rec.forRun(run) {
			g.Expect(p.Deleted).To(BeTrue(), "pod %s is still there", p.Name)
		}
	}).WithTimeout(4*time.Minute).WithPolling(250*time.Millisecond).Should(Succeed(), func() string {
		return fmt.Sprintf("stages: %s\npods: %v\n%s", stagesString(got), rec.forRun(run), e.controllerDiagnosis())
	})
	return got
}

func stagesString(run *cyclonev1alpha1.WorkflowRun) string {
	var b strings.Builder
	for name, s := range run.Status.Stages {
		fmt.Fprintf(&b, "%s: %+v outputs %v; ", name, s.Status, s.Outputs)
	}
	return b.String()
}

func TestRealNodeInstall_servicesReachTheController(t *testing.T) {
	e := setup(t)
	pod := e.controllerPod(t)
	httpc := &http.Client{Timeout: 10 * time.Second}

	t.Run("The metrics Service's endpoint serves gyre's metrics.", func(t *testing.T) {
		g := NewWithT(t)
		addr := e.serviceEndpoint(t, metricsService, "metrics", pod)
		g.Eventually(func(g Gomega) {
			resp, err := httpc.Get("http://" + addr + "/metrics")
			g.Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
			g.Expect(string(body)).To(ContainSubstring("gyre_tenant_reconcile_duration_seconds"))
			g.Expect(string(body)).To(ContainSubstring(`controller_runtime_reconcile_total{controller="workflowrun"`))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})
	t.Run("The web Service's endpoint asks for a token and says how to reach it with one.", func(t *testing.T) {
		g := NewWithT(t)
		addr := e.serviceEndpoint(t, webService, "web", pod)
		resp, err := httpc.Get("http://" + addr + "/runs")
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized))
		g.Expect(string(body)).To(ContainSubstring("services/gyre-web:web/proxy/"))
	})
	t.Run("The webhook Service's endpoint refuses an unsigned delivery.", func(t *testing.T) {
		g := NewWithT(t)
		addr := e.serviceEndpoint(t, webhookService, "webhook", pod)
		body := `{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789",` +
			`"repository":{"full_name":"platform/app","clone_url":"https://git.example.com/platform/app.git"}}`
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/"+convention.Namespace(tenantName), strings.NewReader(body))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "8f7e6a2c-0000-0000-0000-000000000001")
		resp, err := httpc.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		g.Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized), "%s", answer)
	})
}

// serviceEndpoint resolves a Service to the address of its ready endpoint
// on pod through its EndpointSlices, as kube-proxy would, and returns
// "ip:port" of the named port. There is no kube-proxy on the test node:
// the Service's ClusterIP does not route, but Pod IPs do from the host.
func (e *env) serviceEndpoint(t *testing.T, service, port string, pod corev1.Pod) string {
	t.Helper()
	g := NewWithT(t)
	var addr string
	g.Eventually(func(g Gomega) {
		slices, err := e.cs.DiscoveryV1().EndpointSlices(systemNamespace).List(context.Background(),
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
		g.Expect(err).NotTo(HaveOccurred())
		for _, s := range slices.Items {
			var p *int32
			for _, sp := range s.Ports {
				if sp.Name != nil && *sp.Name == port {
					p = sp.Port
				}
			}
			for _, ep := range s.Endpoints {
				if p == nil || ep.TargetRef == nil || ep.TargetRef.UID != pod.UID || !ptr.Deref(ep.Conditions.Ready, false) {
					continue
				}
				addr = net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(*p)))
			}
		}
		g.Expect(addr).NotTo(BeEmpty(), "no ready endpoint of Service %s on pod %s: %+v", service, pod.Name, slices.Items)
	}).WithTimeout(time.Minute).Should(Succeed())
	return addr
}

func TestRealNodeInstall_disruptionBudgetLetsADrainThroughOneAtATime(t *testing.T) {
	e := setup(t)
	g := NewWithT(t)
	ctx := context.Background()
	e.controllerPod(t)
	scale := func(n int32) {
		patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n))
		_, err := e.cs.AppsV1().Deployments(systemNamespace).Patch(ctx, deploymentName, types.MergePatchType, patch, metav1.PatchOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	t.Cleanup(func() { scale(1); e.waitAvailable(t) })
	evict := func(p corev1.Pod) error {
		return e.cs.PolicyV1().Evictions(systemNamespace).Evict(ctx, &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}})
	}
	budget := func(healthy int32) {
		g.Eventually(func(g Gomega) {
			pdb, err := e.cs.PolicyV1().PodDisruptionBudgets(systemNamespace).Get(ctx, deploymentName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pdb.Status.ObservedGeneration).To(Equal(pdb.Generation))
			g.Expect(pdb.Status.CurrentHealthy).To(Equal(healthy))
			g.Expect(pdb.Status.DisruptionsAllowed).To(BeEquivalentTo(1))
		}).WithTimeout(time.Minute).Should(Succeed())
	}

	// Two replicas: a drain evicts one, and not the second until the
	// first's replacement is ready.
	scale(2)
	e.waitAvailable(t)
	budget(2)
	var pods []corev1.Pod
	g.Eventually(func(g Gomega) {
		pods = e.controllerPods(g)
		g.Expect(pods).To(HaveLen(2))
	}).Should(Succeed())
	g.Expect(evict(pods[0])).To(Succeed())
	err := evict(pods[1])
	g.Expect(apierrors.IsTooManyRequests(err)).To(BeTrue(), "evicting the second of two replicas at once: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("disruption budget"))

	// One replica: a drain is not blocked forever; the Deployment starts
	// another and gyre carries on.
	scale(1)
	e.waitAvailable(t)
	budget(1)
	only := e.controllerPod(t)
	g.Expect(evict(only)).To(Succeed())
	e.waitAvailable(t)
	g.Expect(e.controllerPod(t).UID).NotTo(Equal(only.UID))
}

func TestRealNodeInstall_controllerRestartMidRunAdoptsItsPods(t *testing.T) {
	e := setup(t)
	g := NewWithT(t)
	ctx := context.Background()
	old := e.controllerPod(t)
	worker := convention.WorkerNamespace(tenantName)
	rec := recordPods(t, e.cs, worker)

	run := e2etest.StartRun(g, e.admin, convention.Namespace(tenantName), "slow-1", "slow")

	// The nap stage's workload is running.
	var nap podRecord
	g.Eventually(func(g Gomega) {
		for _, p := range rec.forRun(run) {
			if p.Stage == "nap" && !p.WorkloadStarted.IsZero() {
				nap = p
			}
		}
		g.Expect(nap.UID).NotTo(BeEmpty())
	}).WithTimeout(2*time.Minute).WithPolling(100*time.Millisecond).Should(Succeed(), func() string { return fmt.Sprint(rec.forRun(run)) })

	// The controller goes; the Deployment starts another, which takes
	// the lease while the stage still runs.
	deleted := time.Now()
	g.Expect(e.cs.CoreV1().Pods(systemNamespace).Delete(ctx, old.Name, metav1.DeleteOptions{})).To(Succeed())
	var next corev1.Pod
	g.Eventually(func(g Gomega) {
		pods := e.controllerPods(g)
		g.Expect(pods).To(HaveLen(1))
		next = pods[0]
		g.Expect(next.UID).NotTo(Equal(old.UID))
		g.Expect(podReady(&next)).To(BeTrue())
		lease := &coordinationv1.Lease{}
		g.Expect(e.admin.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: leaseName}, lease)).To(Succeed())
		g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).To(HavePrefix(next.Name + "_"))
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	t.Logf("measured: a new controller held the lease %s after the old one was deleted", time.Since(deleted).Round(100*time.Millisecond))
	napNow, err := e.cs.CoreV1().Pods(worker).Get(ctx, nap.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(napNow.UID).To(Equal(nap.UID))
	g.Expect(napNow.Annotations).NotTo(HaveKey(convention.WorkloadExitAnnotation), "the nap stage ended before the new controller took over; the test proves nothing")

	got := e.waitRun(t, run, rec)
	g.Expect(got.Status.Stages["nap"].Pod).NotTo(BeNil())
	g.Expect(got.Status.Stages["nap"].Pod.Name).To(Equal(nap.Name))
	g.Expect(got.Status.Stages["nap"].Outputs).To(ContainElement(cyclonev1alpha1.KeyValue{Key: "slept", Value: "20"}))
	g.Expect(got.Status.Stages["wake"].Outputs).To(ContainElement(cyclonev1alpha1.KeyValue{Key: "woke", Value: "yes"}))

	// Every Pod of the run was created once: the new controller adopted
	// the nap Pod (it told that very Pod its workload had ended) and made
	// the next stage's and the GC Pod.
	pods := rec.forRun(run)
	byStage := map[string][]podRecord{}
	for _, p := range pods {
		byStage[p.Kind+"/"+p.Stage] = append(byStage[p.Kind+"/"+p.Stage], p)
	}
	g.Expect(byStage).To(HaveLen(3), "%v", pods)
	g.Expect(byStage["workload/nap"]).To(HaveLen(1), "%v", pods)
	g.Expect(byStage["workload/wake"]).To(HaveLen(1), "%v", pods)
	g.Expect(byStage["gc/"]).To(HaveLen(1), "%v", pods)
	g.Expect(byStage["workload/nap"][0].UID).To(Equal(nap.UID))
	g.Expect(byStage["workload/nap"][0].ExitSeen).To(BeTemporally(">", deleted), "the new controller told the adopted Pod its workload ended")
	rec.report(t)
}

// podRecord is what a watch saw of one Pod.
type podRecord struct {
	Name  string
	UID   types.UID
	Run   string // the gyre.dev/run annotation: namespace/name
	Stage string
	Kind  string // workload or gc
	Phase corev1.PodPhase
	// Times the watch saw each: the Pod created, its workload container
	// started, the engine's workload-exit annotation, the Pod's end and
	// its deletion.
	Created, WorkloadStarted, ExitSeen, Ended time.Time
	Deleted                                   bool
	// CoordinatorNoticed is when the coordinator logged its first line
	// after the workload ended, by the kubelet's log timestamp.
	CoordinatorNoticed time.Time
}

func (p podRecord) String() string {
	return fmt.Sprintf("%s(%s %s %s deleted=%t)", p.Name, p.Kind, p.Stage, p.Phase, p.Deleted)
}

// podRecorder watches a namespace's Pods from the moment it starts, so it
// sees every Pod created, however short-lived.
type podRecorder struct {
	cs kubernetes.Interface
	ns string

	mu    sync.Mutex
	pods  map[types.UID]*podRecord
	order []types.UID
	wg    sync.WaitGroup
}

func recordPods(t *testing.T, cs kubernetes.Interface, ns string) *podRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &podRecorder{cs: cs, ns: ns, pods: map[types.UID]*podRecord{}}
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv := list.ResourceVersion
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for ev := range w.ResultChan() {
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				rv = pod.ResourceVersion
				r.see(ctx, ev.Type, pod)
			}
			if ctx.Err() != nil {
				return
			}
			// The server ends watches now and then; go on from the last
			// version seen.
			if w, err = cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		w.Stop()
		<-done
		r.wg.Wait()
	})
	return r
}

func (r *podRecorder) see(ctx context.Context, typ watch.EventType, pod *corev1.Pod) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pods[pod.UID]
	if p == nil {
		p = &podRecord{Name: pod.Name, UID: pod.UID, Run: pod.Annotations[convention.AnnotationRun],
			Stage: pod.Annotations[convention.AnnotationStage], Kind: pod.Labels[convention.LabelPodKind], Created: now}
		r.pods[pod.UID] = p
		r.order = append(r.order, pod.UID)
	}
	if typ == watch.Deleted {
		p.Deleted = true
		return
	}
	p.Phase = pod.Status.Phase
	if (p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed) && p.Ended.IsZero() {
		p.Ended = now
	}
	if _, ok := pod.Annotations[convention.WorkloadExitAnnotation]; ok && p.ExitSeen.IsZero() {
		p.ExitSeen = now
	}
	if p.Kind != "workload" || !p.WorkloadStarted.IsZero() {
		return
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "main" && (cs.State.Running != nil || cs.State.Terminated != nil) {
			p.WorkloadStarted = now
			r.wg.Add(1)
			go r.followCoordinator(ctx, pod.Name, pod.UID)
		}
	}
}

// followCoordinator reads the coordinator's log as it is written and
// records when it wrote its first line after the one that says it waits
// for the workload: when it learnt that the workload had ended.
func (r *podRecorder) followCoordinator(ctx context.Context, name string, uid types.UID) {
	defer r.wg.Done()
	stream, err := r.cs.CoreV1().Pods(r.ns).GetLogs(name, &corev1.PodLogOptions{Container: "csc-co", Follow: true, Timestamps: true}).Stream(ctx)
	if err != nil {
		return
	}
	defer stream.Close()
	s := bufio.NewScanner(stream)
	waiting := false
	for s.Scan() {
		line := s.Bytes()
		if !waiting {
			waiting = bytes.Contains(line, []byte("Waiting for the workload"))
			continue
		}
		stamp, _, _ := strings.Cut(string(line), " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.pods[uid].CoordinatorNoticed = at
		r.mu.Unlock()
		return
	}
}

// forRun returns the records of run's Pods, in the order they appeared.
func (r *podRecorder) forRun(run *cyclonev1alpha1.WorkflowRun) []podRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []podRecord
	for _, uid := range r.order {
		if p := r.pods[uid]; p.Run == run.Namespace+"/"+run.Name {
			out = append(out, *p)
		}
	}
	return out
}

// report logs the timings of every Pod seen.
func (r *podRecorder) report(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, uid := range r.order {
		p := r.pods[uid]
		line := fmt.Sprintf("measured: pod %s (%s %s):", p.Name, p.Kind, p.Stage)
		if !p.WorkloadStarted.IsZero() {
			line += fmt.Sprintf(" workload started %s after creation;", p.WorkloadStarted.Sub(p.Created).Round(10*time.Millisecond))
		}
		if !p.ExitSeen.IsZero() && !p.CoordinatorNoticed.IsZero() {
			line += fmt.Sprintf(" workload-exit annotation reached the coordinator in %s;", p.CoordinatorNoticed.Sub(p.ExitSeen).Round(10*time.Millisecond))
		}
		if !p.Ended.IsZero() {
			line += fmt.Sprintf(" ended %s after creation", p.Ended.Sub(p.Created).Round(10*time.Millisecond))
		}
		t.Log(line)
	}
}
