package web

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	ctx       = context.Background()
	k8s       client.Client
	clientset kubernetes.Interface
)

func TestMain(m *testing.M) {
	// A browser, an API server and four other test runs share two cores:
	// give pages time to load and stream.
	SetDefaultEventuallyTimeout(20 * time.Second)
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) error {
		scheme := runtime.NewScheme()
		for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cyclonev1alpha1.AddToScheme, gyrev1alpha1.AddToScheme} {
			if err := add(scheme); err != nil {
				return err
			}
		}
		var err error
		if k8s, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
			return err
		}
		clientset, err = kubernetes.NewForConfig(c.Config)
		return err
	}))
}

// requireBrowser is the environment variable that turns a machine without
// chromium from a skip into a failure, so CI cannot pass by skipping.
const requireBrowser = "GYRE_BROWSER"

// browser starts a headless Chromium for the test and returns a tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	if k8s == nil {
		t.Skip("no control plane in -short mode")
	}
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv(requireBrowser) == "required" {
			t.Fatalf("%s=required, but no chromium on PATH: make tools installs Debian's", requireBrowser)
		}
		t.Skip("no chromium on PATH (make tools installs Debian's as root); the browser tests are skipped")
	}
	actx, cancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancel)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	tab, cancelTimeout := context.WithTimeout(tab, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return tab
}

// testNow is the clock of every view the tests serve, so that screenshots
// show the same ages each time.
var testNow = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// serve starts the web view on a free port and returns its URL.
func serve(t *testing.T, o Options) string {
	t.Helper()
	if o.Clock == nil {
		o.Clock = clocktesting.NewFakePassiveClock(testNow)
	}
	s, err := New(k8s, k8s, clientset, o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// tenantNamespace makes the namespace of tenant, "cyclone-<tenant>", and
// returns it. Each test names its own tenants, so that the screenshots
// show names a reader recognises; a namespace stays Terminating once
// deleted (no controller manager runs), so a name serves one test.
func tenantNamespace(t *testing.T, g Gomega, tenant string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cyclone-" + tenant}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, ns) })
	return ns.Name
}

// stage is a stage of a run the tests write, with the status the engine
// would have given it.
type stage struct {
	name    string
	depends []string
	phase   cyclonev1alpha1.StatusPhase
	// took is how long the stage ran (or has been running), ending at
	// testNow.
	took    time.Duration
	pod     string
	outputs []cyclonev1alpha1.KeyValue
}

// createRun creates a WorkflowRun of workflow and writes its status as
// the engine would: no engine runs in these tests, so what the page shows
// is exactly what the test wrote.
func createRun(g Gomega, ns, name, workflow string, phase cyclonev1alpha1.StatusPhase, stages ...stage) *cyclonev1alpha1.WorkflowRun {
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			WorkflowRef: &corev1.ObjectReference{Kind: "Workflow", Name: workflow},
			StageParams: []cyclonev1alpha1.ParameterConfig{{Name: "build", Parameters: []cyclonev1alpha1.ParameterItem{{Name: "GOFLAGS", Value: ptr.To("-trimpath")}}}},
		},
	}
	g.Expect(k8s.Create(ctx, run)).To(Succeed())
	var start time.Duration
	run.Status.Stages = map[string]*cyclonev1alpha1.StageStatus{}
	for _, st := range stages {
		start = max(start, st.took)
		ss := &cyclonev1alpha1.StageStatus{
			Status:  cyclonev1alpha1.Status{Phase: st.phase},
			Depends: st.depends, Attempt: 1, Outputs: st.outputs,
		}
		if st.took > 0 {
			ss.Status.StartTime = &metav1.Time{Time: testNow.Add(-st.took)}
			if st.phase != cyclonev1alpha1.StatusRunning {
				ss.Status.CompletionTime = &metav1.Time{Time: testNow}
			}
		}
		if st.pod != "" {
			ss.Pod = &cyclonev1alpha1.PodInfo{Namespace: ns, Name: st.pod}
		}
		run.Status.Stages[st.name] = ss
	}
	run.Status.Overall = cyclonev1alpha1.Status{Phase: phase, StartTime: &metav1.Time{Time: testNow.Add(-start)}}
	if phase != cyclonev1alpha1.StatusRunning && phase != cyclonev1alpha1.StatusPending {
		run.Status.Overall.CompletionTime = &metav1.Time{Time: testNow}
	}
	g.Expect(k8s.Status().Update(ctx, run)).To(Succeed())
	return run
}

// serviceAccountToken makes a ServiceAccount in namespace that may get and
// list WorkflowRuns there only, and returns a token of it, as a user's
// kubeconfig holds one.
func serviceAccountToken(g Gomega, namespace, name string) string {
	_, err := clientset.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"cyclone.dev"}, Resources: []string{"workflowruns"}, Verbs: []string{"get", "list"}}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: namespace}},
	})).To(Succeed())
	tr, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// kubelet stands in for the kubelet of a node the tests register: kwok
// serves no container logs, so this serves the API server's pods/log
// requests for Pods on that node. Lines sent for a Pod are written to its
// followed log as they come; ending it ends the log.
type kubelet struct {
	node  string
	mu    sync.Mutex
	lines map[string]chan string
}

// pod returns the channel of the named Pod's log lines.
func (k *kubelet) pod(name string) chan string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lines[name] == nil {
		k.lines[name] = make(chan string, 16)
	}
	return k.lines[name]
}

func (k *kubelet) send(pod, line string) { k.pod(pod) <- line }
func (k *kubelet) end(pod string)        { close(k.pod(pod)) }

// startKubelet registers a Node whose kubelet endpoint is a TLS server of
// the test (the API server does not verify a kubelet's certificate unless
// told a CA) and returns it.
func startKubelet(t *testing.T, g Gomega) *kubelet {
	t.Helper()
	k := &kubelet{lines: map[string]chan string{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /containerLogs/<namespace>/<pod>/<container>
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
		if !strings.HasPrefix(r.URL.Path, "/containerLogs/") || len(parts) != 3 {
			http.NotFound(w, r)
			return
		}
		lines := k.pod(parts[1])
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					return
				}
				fmt.Fprintln(w, line)
				_ = rc.Flush()
			case <-r.Context().Done():
				return
			}
		}
	}))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	srv.Listener = ln
	srv.TLS = &tls.Config{}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	g.Expect(err).NotTo(HaveOccurred())
	p, err := strconv.Atoi(port)
	g.Expect(err).NotTo(HaveOccurred())

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-kubelet-"}}
	g.Expect(k8s.Create(ctx, node)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, node) })
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(p)
	g.Expect(k8s.Status().Update(ctx, node)).To(Succeed())
	k.node = node.Name
	return k
}

// stagePod creates the Pod the engine would have made for stage of run,
// on node.
func stagePod(g Gomega, run *cyclonev1alpha1.WorkflowRun, stage, name, node string) {
	// No controller manager makes the namespace's default ServiceAccount,
	// which admission wants.
	err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: run.Namespace, Name: "default"}})
	g.Expect(client.IgnoreAlreadyExists(err)).To(Succeed())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: run.Namespace, Name: name,
			Labels:      map[string]string{convention.LabelManagedBy: convention.ManagedByExec, convention.LabelRunUID: string(run.UID)},
			Annotations: map[string]string{convention.AnnotationRun: run.Namespace + "/" + run.Name, convention.AnnotationStage: stage},
		},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "main", Image: "busybox"}},
		},
	}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())
}

// screenshot writes a full-page PNG of the tab into docs/ with -update:
// the README's pictures come from here.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	if !*update {
		return
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docs", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
