package config_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/receiver"
	"github.com/gyreops/gyre/tenants"
)

// The identity config/rbac gives gyre's controller.
const (
	controllerNamespace = "gyre-system"
	controllerAccount   = "system:serviceaccount:gyre-system:gyre-controller"
)

// cluster runs a scheduler, a controller manager (so the tenant's PVC
// binds) and a kwok node (so stage Pods run).
var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, ControllerManager: true, Nodes: 1}, func(c *testcluster.Cluster) error {
		cluster = c
		return nil
	}))
}

// buildRBAC builds config/rbac as `kubectl apply -k` would.
func buildRBAC(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "rbac")
	if err != nil {
		t.Fatalf("build config/rbac: %v", err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		u, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: u})
	}
	return objs
}

func TestRBAC_namesEveryRightAndCannotGrantItself(t *testing.T) {
	testcluster.Require(t)
	roles := 0
	for _, o := range buildRBAC(t) {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
			continue
		}
		roles++
		var rules struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &rules); err != nil {
			t.Fatal(err)
		}
		t.Run(o.GetKind()+" "+o.GetName()+" names every group, resource and verb and holds no right to escalate.", func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(rules.Rules).NotTo(BeEmpty())
			for i, r := range rules.Rules {
				g.Expect(r.NonResourceURLs).To(BeEmpty(), "rule %d", i)
				g.Expect(r.Resources).NotTo(BeEmpty(), "rule %d", i)
				for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
					for _, v := range list {
						g.Expect(v).NotTo(ContainSubstring("*"), "rule %d: %v", i, r)
					}
				}
				for _, v := range r.Verbs {
					g.Expect(v).NotTo(BeElementOf("escalate", "bind", "impersonate"), "rule %d: %v", i, r)
				}
				// A right to list or watch Secrets is a right to read
				// every Secret of the cluster; gyre reads them by name.
				if slices.Contains(r.Resources, "secrets") {
					g.Expect(r.Verbs).NotTo(ContainElement(BeElementOf("list", "watch")), "rule %d: %v", i, r)
				}
			}
		})
	}
	if roles < 2 {
		t.Fatalf("config/rbac has %d roles, want the controller's and the leader election's", roles)
	}
}

// forbiddenLog records the requests the API server refused with 403.
type forbiddenLog struct {
	mu   sync.Mutex
	seen []string
}

// wrap makes rt record into f; every client of the manager gets its own
// transport, all recording here.
func (f *forbiddenLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			f.mu.Lock()
			f.seen = append(f.seen, req.Method+" "+req.URL.Path)
			f.mu.Unlock()
		}
		return resp, err
	})
}

func (f *forbiddenLog) refused() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// syncBuffer is a log sink the manager's goroutines share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// forbiddenLines returns the log lines that tell of a refused request.
func forbiddenLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(strings.ToLower(l), "forbidden") {
			out = append(out, l)
		}
	}
	return out
}

func TestRBAC_controllerDoesItsWholeJobAsItsServiceAccount(t *testing.T) {
	testcluster.Require(t)
	if cluster == nil {
		t.Skip("needs the test control plane; not started in -short mode")
	}
	g := NewWithT(t)
	ctx := context.Background()
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	admin, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	// Installed as config/default installs it: the namespace, then
	// config/rbac (the ServiceAccount, the roles and their bindings).
	g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllerNamespace}})).To(Succeed())
	for _, o := range buildRBAC(t) {
		g.Expect(admin.Create(ctx, o)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
	g.Eventually(func(g Gomega) {
		review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               controllerAccount,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "gyre.dev", Resource: "tenants", Verb: "watch"},
		}}
		g.Expect(admin.Create(ctx, review)).To(Succeed())
		g.Expect(review.Status.Allowed).To(BeTrue(), "the API server does not know the bindings yet")
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// What a platform team creates: a private Repository and its
	// credentials, a Tenant with a quota and storage, and, standing in
	// for a storage provisioner, a volume for its PVC.
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "pipelines.git")
	repo.CopyDir(filepath.Join("testdata", "rbac-repo"))
	repo.Commit("one tenant, one pipeline")
	repo.Push()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{Username: "gyre", Password: "correct-horse"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pipelines-auth", Namespace: controllerNamespace},
		StringData: map[string]string{"username": "gyre", "password": "correct-horse"}}
	hookSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pipelines-webhook", Namespace: controllerNamespace},
		StringData: map[string]string{receiver.SecretKey: "push-secret"}}
	repoObj := &gyrev1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "pipelines"}, Spec: gyrev1alpha1.RepositorySpec{
		URL:       srv.URL + "/pipelines.git",
		Interval:  &metav1.Duration{Duration: time.Hour},
		SecretRef: &gyrev1alpha1.SecretReference{Name: creds.Name, Namespace: creds.Namespace},
		Webhook:   &gyrev1alpha1.RepositoryWebhook{SecretRef: gyrev1alpha1.SecretReference{Name: hookSecret.Name, Namespace: hookSecret.Namespace}},
	}}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac-team"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: t.TempDir()}},
		},
	}
	tenant := &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: gyrev1alpha1.TenantSpec{
		RepositoryRef: gyrev1alpha1.ObjectReference{Name: repoObj.Name},
		Quota:         corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")},
		Storage:       &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
		// Every right a Tenant may grant its worker, so that gyre must
		// hold each to give it.
		WorkerAccess: []gyrev1alpha1.WorkerAccess{gyrev1alpha1.WorkerAccessPatchPods, gyrev1alpha1.WorkerAccessReadSecrets},
	}}
	for _, o := range []client.Object{creds, hookSecret, repoObj, pv, tenant} {
		g.Expect(admin.Create(ctx, o)).To(Succeed())
	}

	// gyre's controller manager, built as `gyre controller` builds it, as
	// its ServiceAccount: the admin credentials only authenticate the
	// impersonation, every request is authorised as the ServiceAccount.
	refused := &forbiddenLog{}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: controllerAccount}
	cfg.Wrap(refused.wrap)
	logs := &syncBuffer{}
	logger := zap.New(zap.UseDevMode(true), zap.WriteTo(logs))
	// client-go's informers report refused listings through klog, and
	// some of gyre's parts log through controller-runtime's root logger.
	klog.SetLogger(logger)
	ctrl.SetLogger(logger)
	t.Cleanup(klog.ClearLogger)
	o := manager.Options{
		MetricsAddr:             "0",
		ProbeAddr:               "0",
		LeaderElection:          true,
		LeaderElectionNamespace: controllerNamespace,
		ArtifactDir:             t.TempDir(),
		LogDir:                  t.TempDir(),
		WebAddr:                 freeAddr(t),
		Exec:                    exec.Config{GCPodAnnotations: map[string]string{testcluster.AnnotationResult: "succeed"}},
	}
	opts := o.Manager(scheme)
	opts.Logger = logger
	mgr, err := ctrl.NewManager(cfg, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(manager.Setup(mgr, o)).To(Succeed())
	// The webhook server --webhook-addr adds, on a port of the test's.
	hooks := manager.NewWebhookServer(mgr, o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	mgrCtx, cancel := context.WithCancel(ctx)
	done, hooksDone := make(chan error, 1), make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	go func() { hooksDone <- hooks.Serve(mgrCtx, ln) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			g.Expect(<-hooksDone).To(Succeed())
			g.Expect(<-done).To(Succeed())
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})

	long := func(f func(g Gomega)) {
		g.Eventually(f).WithTimeout(90 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	}
	ready := func(conds []metav1.Condition) bool { return apimeta.IsStatusConditionTrue(conds, meta.ReadyCondition) }

	// The Repository is fetched with its credentials.
	long(func(g Gomega) {
		got := &gyrev1alpha1.Repository{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(repoObj), got)).To(Succeed())
		g.Expect(ready(got.Status.Conditions)).To(BeTrue(), "repository: %v", got.Status.Conditions)
	})

	// The Tenant's namespaces, worker ServiceAccount and its RBAC,
	// quota and PVC are provisioned, and its target applied.
	ns, worker := convention.Namespace(tenant.Name), convention.WorkerNamespace(tenant.Name)
	long(func(g Gomega) {
		got := &gyrev1alpha1.Tenant{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(tenant), got)).To(Succeed())
		g.Expect(ready(got.Status.Conditions)).To(BeTrue(), "tenant: %v", got.Status.Conditions)
		g.Expect(got.Status.Objects).To(Equal(4))
	})
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: worker}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: convention.WorkerServiceAccount, Namespace: worker}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: convention.WorkerServiceAccount, Namespace: worker}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: convention.WorkerServiceAccount, Namespace: worker}},
		&corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: tenants.QuotaName, Namespace: worker}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: convention.PVCName(tenant.Name), Namespace: worker}},
		&cyclonev1alpha1.Stage{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns}},
		&cyclonev1alpha1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: ns}},
	} {
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed(), "%T %s", obj, obj.GetName())
	}
	long(func(g Gomega) {
		pvc := &corev1.PersistentVolumeClaim{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: worker, Name: convention.PVCName(tenant.Name)}, pvc)).To(Succeed())
		g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
	})

	// A signed push event makes the Repository fetch the pushed commit
	// at once: the receiver reads the webhook Secret and annotates the
	// Repository as the ServiceAccount.
	repo.WriteFile("NOTES.md", "pushed\n")
	pushed := repo.Commit("a push")
	repo.Push()
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"clone_url":%q}}`, pushed, repoObj.Spec.URL))
	mac := hmac.New(sha256.New, []byte("push-secret"))
	mac.Write(body)
	long(func(g Gomega) {
		req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+receiver.Path, bytes.NewReader(body))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "rbac-push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusAccepted))
	})
	long(func(g Gomega) {
		got := &gyrev1alpha1.Repository{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(repoObj), got)).To(Succeed())
		g.Expect(got.Status.Artifact).NotTo(BeNil())
		g.Expect(got.Status.Artifact.Revision).To(Equal("main@sha1:" + pushed))
	})

	// A run of the tenant's Workflow runs its stage Pod on the kwok node
	// to success, and its GC Pod removes its data.
	run := &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-1", Namespace: ns},
		Spec: cyclonev1alpha1.WorkflowRunSpec{
			WorkflowRef: &corev1.ObjectReference{Kind: "workflow.cyclone.dev", Name: "hello"},
			Timeout:     "5m",
		},
	}
	g.Expect(admin.Create(ctx, run)).To(Succeed())
	long(func(g Gomega) {
		got := &cyclonev1alpha1.WorkflowRun{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(run), got)).To(Succeed())
		g.Expect(got.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "run: %+v", got.Status.Overall)
		g.Expect(got.Status.GC).NotTo(BeNil())
		g.Expect(got.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded))
		g.Expect(got.Status.Cleaned).To(BeTrue())
	})

	// The controller checks who asks for a run's logs with its own
	// rights: a user who may not get the run is refused (403), not met
	// with a failed review.
	cs, err := kubernetes.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	token, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "nobody", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	logsReq, err := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+manager.LogsPath+"/"+ns+"/hello-1/hello", nil)
	g.Expect(err).NotTo(HaveOccurred())
	logsReq.Header.Set("Authorization", "Bearer "+token.Status.Token)
	logsResp, err := http.DefaultClient.Do(logsReq)
	g.Expect(err).NotTo(HaveOccurred())
	logsResp.Body.Close()
	g.Expect(logsResp.StatusCode).To(Equal(http.StatusForbidden))
	checkWebView(g, o.WebAddr, ns, token.Status.Token)

	// Removing the Tenant, once its deletion protection is lifted,
	// removes what gyre made for it.
	g.Expect(testcluster.InstallProtection(ctx, cluster.Config)).To(Succeed())
	lifted := client.MergeFrom(tenant.DeepCopy())
	metav1.SetMetaDataAnnotation(&tenant.ObjectMeta, gyrev1alpha1.DeletionProtectionAnnotation, gyrev1alpha1.DeletionProtectionDisabled)
	g.Expect(admin.Patch(ctx, tenant, lifted)).To(Succeed())
	g.Expect(admin.Delete(ctx, tenant)).To(Succeed())
	long(func(g Gomega) {
		err := admin.Get(ctx, client.ObjectKeyFromObject(tenant), &gyrev1alpha1.Tenant{})
		g.Expect(client.IgnoreNotFound(err)).To(Succeed())
		g.Expect(err).To(HaveOccurred(), "the Tenant is still there")
		for _, name := range []string{ns, worker} {
			got := &corev1.Namespace{}
			if err := admin.Get(ctx, client.ObjectKey{Name: name}, got); err == nil {
				g.Expect(got.DeletionTimestamp).NotTo(BeNil(), "namespace %s is not being deleted", name)
			}
		}
	})

	stop()
	g.Expect(refused.refused()).To(BeEmpty(), "requests the API server refused to gyre-controller")
	g.Expect(forbiddenLines(logs.String())).To(BeEmpty(), "the controller's log tells of refused requests")
}

// freeAddr is a free port of 127.0.0.1.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// checkWebView asks the web view, which --web-addr serves, for the run
// hello-1 of ns with the token of a user who may not get it: the
// controller reviews the token and the user's rights with its own, and
// shows no run.
func checkWebView(g Gomega, addr, ns, token string) {
	get := func(path string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		return resp.StatusCode, b.String()
	}
	code, body := get("/runs")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).NotTo(ContainSubstring("hello-1"))
	code, body = get("/runs/" + ns + "/hello-1")
	g.Expect(code).To(Equal(http.StatusForbidden), body)
	code, _ = get("/tenants")
	g.Expect(code).To(Equal(http.StatusOK))
}
