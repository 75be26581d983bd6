package tenants_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/tenants"
)

func cycloneKubeconfig(server string, ca []byte, user string) *runtime.RawExtension {
	b64 := base64.StdEncoding.EncodeToString
	return &runtime.RawExtension{Raw: fmt.Appendf(nil, `{
  "preferences": {},
  "clusters": {"far": {"server": %q, "certificate-authority-data": %q, "extensions": {"gyre": {"kind": "Unknown"}}}},
  "users": {"admin": %s},
  "contexts": {"far": {"cluster": "far", "user": "admin"}},
  "current-context": "far"
}`, server, b64(ca), user)}
}

func certUser(cert, key []byte) string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf(`{"client-certificate-data": %q, "client-key-data": %q}`, b64(cert), b64(key))
}

// TestClients_inlineCredentials reaches the far cluster through
// ExecutionClusters that carry their credentials inline, as Cyclone writes
// them: a ServiceAccount token with the server's CA, and a kubeConfig with
// a client certificate.
func TestClients_inlineCredentials(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	cc, fc := newClient(g, control), newClient(g, far)

	// A namespace only far has, to tell which cluster a client reaches.
	marker := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "far-only-"}}
	g.Expect(fc.Create(ctx, marker)).To(Succeed())

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: marker.Name, Name: "gyre"}}
	g.Expect(fc.Create(ctx, sa)).To(Succeed())
	g.Expect(fc.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: marker.Name + "-gyre"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}},
	})).To(Succeed())
	kube, err := kubernetes.NewForConfig(far.Config)
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := kube.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(far.Config.CAData).NotTo(BeEmpty())
	g.Expect(far.Config.CertData).NotTo(BeEmpty(), "the test cluster's admin authenticates with a client certificate")
	for _, ec := range []*cyclonev1alpha1.ExecutionCluster{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "inline-token"},
			Spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server: far.Config.Host, BearerToken: tr.Status.Token,
				TLSClientConfig: &cyclonev1alpha1.TLSClientConfig{CAData: far.Config.CAData},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "inline-kubeconfig"},
			Spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				KubeConfig: cycloneKubeconfig(far.Config.Host, far.Config.CAData, certUser(far.Config.CertData, far.Config.KeyData)),
			}},
		},
	} {
		g.Expect(cc.Create(ctx, ec)).To(Succeed())
		t.Cleanup(func() { _ = cc.Delete(ctx, ec) })
	}
	cs := &tenants.Clients{Control: cc, Reader: cc}

	for _, name := range []string{"inline-token", "inline-kubeconfig"} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			c, err := cs.Get(ctx, name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(marker), &corev1.Namespace{})).To(Succeed(), "the client reaches far")
			again, err := cs.Get(ctx, name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(BeIdenticalTo(c), "an unchanged ExecutionCluster reuses the client")
		})
	}

	t.Run("A changed inline credential makes a new client.", func(t *testing.T) {
		g := NewWithT(t)
		first, err := cs.Get(ctx, "inline-token")
		g.Expect(err).NotTo(HaveOccurred())
		ec := &cyclonev1alpha1.ExecutionCluster{}
		g.Expect(cc.Get(ctx, client.ObjectKey{Name: "inline-token"}, ec)).To(Succeed())
		ec.Spec.Credential.BearerToken = "not-a-token"
		g.Expect(cc.Update(ctx, ec)).To(Succeed())
		rotated, err := cs.Get(ctx, "inline-token")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rotated).NotTo(BeIdenticalTo(first))
		err = rotated.Get(ctx, client.ObjectKeyFromObject(marker), &corev1.Namespace{})
		g.Expect(apierrors.IsUnauthorized(err)).To(BeTrue(), "the new client uses the new token: %v", err)
	})
}
