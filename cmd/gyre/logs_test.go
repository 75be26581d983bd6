package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/e2etest"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// logsPipelines: a stage that says one line, and one that says a line,
// waits, and says another, to be followed while it runs.
var logsPipelines = map[string]string{
	"stages.yaml": `apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: hello
spec:
  pod:
    spec:
      containers:
      - name: main
        image: ` + testcluster.BusyboxImage + `
        command: [sh, -c, "echo hello from the hello stage"]
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: slow
spec:
  pod:
    spec:
      containers:
      - name: main
        image: ` + testcluster.BusyboxImage + `
        command: [sh, -c, "echo first line; sleep 4; echo second line"]
`,
	"workflows.yaml": `apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: hello
spec:
  stages:
  - name: hello
---
apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: slow
spec:
  stages:
  - name: slow
`,
}

// logsDefaults are gyre logs' default flags.
var logsDefaults = logsOptions{controllerNamespace: "gyre-system", service: "gyre-webhook", port: "webhook"}

func TestRealNode_logs(t *testing.T) {
	testcluster.SkipWithoutRealNode(t)
	g := NewWithT(t)
	ctx := context.Background()
	cluster, err := testcluster.Start(ctx, testcluster.Options{Scheduler: true, RealNode: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = cluster.Stop() })
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	k8s, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	cs, err := kubernetes.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())

	logDir := t.TempDir()
	port := exposeWebhook(t, cluster, k8s)
	e2etest.StartGyre(t, cluster, manager.Options{LogDir: logDir, WebhookAddr: net.JoinHostPort(cluster.NodeIP, strconv.Itoa(port))})
	tenant := "logs"
	e2etest.NewTenant(t, cluster, k8s, tenant, logsPipelines)
	ns, worker := "cyclone-"+tenant, "cyclone-"+tenant+"-worker"

	// dev may get runs in the tenant's namespace and read its Pods' logs;
	// stranger may not. Both may reach the controller's Service through
	// the API server, which is all a proxy right gives: the controller
	// itself decides who reads a run's logs.
	dev := userRESTConfig(t, cluster, cs, ns, "dev")
	stranger := userRESTConfig(t, cluster, cs, ns, "stranger")
	grant(t, cs, ns, "runs", []rbacv1.PolicyRule{{APIGroups: []string{"cyclone.dev"}, Resources: []string{"workflowruns"}, Verbs: []string{"get", "list"}}}, "dev")
	grantIn(t, cs, worker, ns, "pods", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get"}}}, "dev")
	grantIn(t, cs, "gyre-system", ns, "proxy", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services/proxy"}, ResourceNames: []string{"gyre-webhook", "gyre-webhook:webhook"}, Verbs: []string{"get"}}}, "dev", "stranger")

	t.Run("After GC, gyre logs prints the stage's log the controller kept.", func(t *testing.T) {
		g := NewWithT(t)
		run := startLogsRun(g, k8s, ns, "hello")
		run = e2etest.WaitFinished(g, k8s, run)
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "overall %+v", run.Status.Overall)
		var pods corev1.PodList
		g.Expect(k8s.List(ctx, &pods, client.InNamespace(worker))).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty(), "the stage Pod is gone")

		var out bytes.Buffer
		// The API server learns of the Service's endpoints through an
		// informer: the first request may come before it has.
		g.Eventually(func(g Gomega) {
			out.Reset()
			g.Expect(writeLogs(ctx, &out, dev, ns, logsDefaults, run.Name, "hello")).To(Succeed())
		}).WithTimeout(10 * time.Second).Should(Succeed())
		g.Expect(out.String()).To(ContainSubstring("hello from the hello stage\n"))

		strangerCS, err := kubernetes.NewForConfig(stranger)
		g.Expect(err).NotTo(HaveOccurred())
		l := &logReader{cs: strangerCS, cfg: stranger, o: logsDefaults, run: run}
		out.Reset()
		err = l.kept(ctx, &out, "hello")
		g.Expect(err).To(HaveOccurred(), "a user who may not get the run reads nothing")
		g.Expect(err.Error()).To(ContainSubstring("cannot get workflowruns"))
		g.Expect(out.String()).NotTo(ContainSubstring("hello from"))

		g.Expect(k8s.Delete(ctx, run)).To(Succeed())
		g.Eventually(func(g Gomega) {
			_, err := os.Stat(filepath.Join(logDir, ns, run.Name))
			g.Expect(os.IsNotExist(err)).To(BeTrue(), "the run's logs are deleted with it")
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	t.Run("While a stage runs, gyre logs -f follows it.", func(t *testing.T) {
		g := NewWithT(t)
		run := startLogsRun(g, k8s, ns, "slow")
		g.Eventually(func(g Gomega) {
			got := &cyclonev1alpha1.WorkflowRun{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(run), got)).To(Succeed())
			st := got.Status.Stages["slow"]
			g.Expect(st).NotTo(BeNil())
			g.Expect(st.Pod).NotTo(BeNil())
			pod := &corev1.Pod{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: st.Pod.Namespace, Name: st.Pod.Name}, pod)).To(Succeed())
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
			run = got
		}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())

		follow := logsDefaults
		follow.follow = true
		var out bytes.Buffer
		// Bounded, so that a follow that never ends fails with what it read.
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		g.Expect(writeLogs(fctx, &out, dev, ns, follow, run.Name, "slow")).To(Succeed(), out.String())
		g.Expect(out.String()).To(ContainSubstring("first line\nsecond line\n"), "followed until the workload ended")
	})
}

// exposeWebhook makes Service gyre-system/gyre-webhook, as config/ ships
// it, point at a port of this machine where the test's gyre serves, and
// returns the port.
func exposeWebhook(t *testing.T, cluster *testcluster.Cluster, k8s client.Client) int {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	l, err := net.Listen("tcp", net.JoinHostPort(cluster.NodeIP, "0"))
	g.Expect(err).NotTo(HaveOccurred())
	port := l.Addr().(*net.TCPAddr).Port
	g.Expect(l.Close()).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gyre-system"}})).To(Succeed())
	// The API server proxies only to endpoints that are Pods with the
	// endpoint's address: a host-network Pod on the node stands in for
	// the controller, which runs in this test's process on the node's
	// address.
	standIn := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gyre-controller", Namespace: "gyre-system"},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{
				Name: "main", Image: testcluster.BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
	g.Expect(k8s.Create(ctx, standIn)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(standIn), standIn)).To(Succeed())
		g.Expect(standIn.Status.PodIP).To(Equal(cluster.NodeIP))
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "gyre-webhook", Namespace: "gyre-system"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "webhook", Port: 9292, TargetPort: intstr.FromInt32(int32(port)),
		}}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "gyre-webhook", Namespace: "gyre-system",
			Labels: map[string]string{discoveryv1.LabelServiceName: "gyre-webhook"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{cluster.NodeIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "gyre-system", Name: standIn.Name, UID: standIn.UID},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("webhook"), Port: ptr.To(int32(port))}},
	})).To(Succeed())
	return port
}

// userRESTConfig makes ServiceAccount name in namespace and returns a client
// configuration holding its token, as a user's kubeconfig would.
func userRESTConfig(t *testing.T, cluster *testcluster.Cluster, cs kubernetes.Interface, namespace, name string) *rest.Config {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	_, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return &rest.Config{
		Host:            cluster.Config.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: cluster.Config.CAData},
		BearerToken:     tr.Status.Token,
	}
}

// grant gives ServiceAccounts of namespace rules in namespace.
func grant(t *testing.T, cs kubernetes.Interface, namespace, name string, rules []rbacv1.PolicyRule, accounts ...string) {
	t.Helper()
	grantIn(t, cs, namespace, namespace, name, rules, accounts...)
}

// grantIn gives ServiceAccounts of saNamespace rules in namespace.
func grantIn(t *testing.T, cs kubernetes.Interface, namespace, saNamespace, name string, rules []rbacv1.PolicyRule, accounts ...string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	_, err := cs.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
	}
	for _, a := range accounts {
		rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: a, Namespace: saNamespace})
	}
	_, err = cs.RbacV1().RoleBindings(namespace).Create(ctx, rb, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
}

// startLogsRun starts a run of workflow as gyre run does.
func startLogsRun(g Gomega, k8s client.Client, ns, workflow string) *cyclonev1alpha1.WorkflowRun {
	run, err := newRun(workflow, nil)
	g.Expect(err).NotTo(HaveOccurred())
	run.Namespace = ns
	g.Expect(k8s.Create(context.Background(), run)).To(Succeed())
	return run
}

func TestRun_paramsBecomeGlobalVariables(t *testing.T) {
	for _, tc := range []struct {
		name    string
		params  []string
		want    []cyclonev1alpha1.GlobalVariable
		wantErr string
	}{
		{"Each --param becomes a global variable, in order.", []string{"IMAGE=app:1.2", "ARGS=a=b"},
			[]cyclonev1alpha1.GlobalVariable{{Name: "IMAGE", Value: "app:1.2"}, {Name: "ARGS", Value: "a=b"}}, ""},
		{"A --param without a value is refused.", []string{"IMAGE"}, nil, "want NAME=VALUE"},
		{"A --param given twice is refused.", []string{"A=1", "A=2"}, nil, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			run, err := newRun("build-and-deploy", tc.params)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(run.Spec.GlobalVariables).To(Equal(tc.want))
			g.Expect(run.GenerateName).To(Equal("build-and-deploy-"))
			g.Expect(run.Finalizers).To(ConsistOf(convention.RunFinalizer))
			g.Expect(run.Spec.WorkflowRef.Name).To(Equal("build-and-deploy"))
			g.Expect(strings.HasPrefix(runPrefix(strings.Repeat("w", 80)), strings.Repeat("w", 40))).To(BeTrue())
		})
	}
}
