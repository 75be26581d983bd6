package runlogs

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gyreops/gyre/internal/testcluster"
)

var clientset kubernetes.Interface

func TestMain(m *testing.M) {
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) error {
		var err error
		clientset, err = kubernetes.NewForConfig(c.Config)
		return err
	}))
}

// serviceAccountToken makes a ServiceAccount in namespace and returns a
// token of it, as a user's kubeconfig holds one.
func serviceAccountToken(g Gomega, namespace, name string) string {
	_, err := clientset.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

func TestHandler_servesLogsOnlyToWhoMayGetTheRun(t *testing.T) {
	if clientset == nil {
		t.Skip("no control plane in -short mode")
	}
	g := NewWithT(t)
	ns, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "logs-"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = clientset.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}) })
	other, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "logs-other-"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = clientset.CoreV1().Namespaces().Delete(ctx, other.Name, metav1.DeleteOptions{}) })

	reader := serviceAccountToken(g, ns.Name, "reader")
	stranger := serviceAccountToken(g, ns.Name, "stranger")
	_, err = clientset.RbacV1().Roles(ns.Name).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "runs-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"cyclone.dev"}, Resources: []string{"workflowruns"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = clientset.RbacV1().RoleBindings(ns.Name).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "runs-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "runs-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns.Name}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	store := &Dir{Root: t.TempDir()}
	for _, n := range []string{ns.Name, other.Name} {
		g.Expect(store.Write(ctx, Key{Namespace: n, Run: "run-1", Stage: "build", Attempt: 1, Container: "main"},
			strings.NewReader("password=hunter2 in "+n+"\n"))).To(Succeed())
	}
	srv := httptest.NewServer(http.StripPrefix("/logs", NewHandler(store, clientset)))
	t.Cleanup(srv.Close)

	get := func(path, header, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/logs/"+path, nil)
		g.Expect(err).NotTo(HaveOccurred())
		if header != "" {
			req.Header.Set(header, token)
		}
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, path, header, token string
		code                      int
		body                      string
	}{
		{"A caller without a token is unauthorized.", ns.Name + "/run-1/build", "", "", http.StatusUnauthorized, "unauthorized"},
		{"A caller with a token the API server does not know is unauthorized.", ns.Name + "/run-1/build", "Authorization", "Bearer not-a-token", http.StatusUnauthorized, "unauthorized"},
		{"A user who may not get runs in the namespace is forbidden.", ns.Name + "/run-1/build", "Authorization", "Bearer " + stranger, http.StatusForbidden, "cannot get workflowruns"},
		{"A user who may get runs in the namespace reads the stage's log.", ns.Name + "/run-1/build", "Authorization", "Bearer " + reader, http.StatusOK, "password=hunter2 in " + ns.Name + "\n"},
		{"The token may come in the header that crosses the API server's proxy.", ns.Name + "/run-1/build", TokenHeader, reader, http.StatusOK, "password=hunter2 in " + ns.Name + "\n"},
		{"A user who may get runs lists the run's logs.", ns.Name + "/run-1", TokenHeader, reader, http.StatusOK, "build 1 main\n"},
		{"A user who may get runs in one namespace is forbidden another's.", other.Name + "/run-1/build", TokenHeader, reader, http.StatusForbidden, "cannot get workflowruns"},
		{"A stage with no stored log is not found.", ns.Name + "/run-1/deploy", TokenHeader, reader, http.StatusNotFound, "no stored log"},
		{"A path that climbs out is refused before any check.", "..%2f..%2fetc/run-1/build", TokenHeader, reader, http.StatusBadRequest, "bad namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			code, body := get(tc.path, tc.header, tc.token)
			g.Expect(code).To(Equal(tc.code), body)
			g.Expect(body).To(ContainSubstring(tc.body))
			if tc.code != http.StatusOK {
				g.Expect(body).NotTo(ContainSubstring("hunter2"))
			}
		})
	}
}
