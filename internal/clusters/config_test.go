package clusters_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/clusters"
)

// secretReader serves Secrets from memory: Config reads nothing
// else.
type secretReader map[client.ObjectKey]*corev1.Secret

func (r secretReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s, ok := r[key]
	if !ok {
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	s.DeepCopyInto(obj.(*corev1.Secret))
	return nil
}

func (r secretReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("secretReader lists nothing")
}

// The credentials in these cases; none may appear in an error.
const (
	token    = "s3cret-token"
	password = "s3cret-password"
)

var (
	caPEM   = []byte("-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n")
	certPEM = []byte("-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n")
	keyPEM  = []byte("-----BEGIN EC PRIVATE KEY-----\ns3cret-key\n-----END EC PRIVATE KEY-----\n")
)

// kubeconfigV1 is a kubeconfig as kubectl writes it, with user as the
// body of its only user.
func kubeconfigV1(cluster, user string) []byte {
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
` + cluster + `contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
users:
- name: u
  user:
` + user)
}

// cycloneKubeconfig is a kubeconfig in the shape Cyclone stores in
// spec.credential.kubeConfig: client-go's internal clientcmd Config, whose
// clusters, users and contexts are maps keyed by name.
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

func TestClusterConfig(t *testing.T) {
	secrets := secretReader{}
	addSecret := func(name string, kubeconfig []byte) *cyclonev1alpha1.SecretKeyReference {
		secrets[client.ObjectKey{Namespace: "creds", Name: name}] = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "creds", Name: name, ResourceVersion: "7"},
			Data:       map[string][]byte{"value": kubeconfig},
		}
		return &cyclonev1alpha1.SecretKeyReference{Namespace: "creds", Name: name}
	}
	server := "    server: https://far.example:6443\n"

	for _, tc := range []struct {
		name string
		spec cyclonev1alpha1.ExecutionClusterSpec
		// want checks the config made; wantField and wantReason the
		// *CredentialError returned instead.
		want                  func(g Gomega, cfg *restConfig)
		wantField, wantReason string
	}{
		{
			name: "A kubeconfig Secret with an inline token is used.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{SecretRef: addSecret("token", kubeconfigV1(server, "    token: "+token+"\n"))},
			want: func(g Gomega, cfg *restConfig) {
				g.Expect(cfg.Host).To(Equal("https://far.example:6443"))
				g.Expect(cfg.BearerToken).To(Equal(token))
			},
		},
		{
			name: "secretRef wins over an inline credential.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{
				SecretRef:  addSecret("wins", kubeconfigV1(server, "    token: "+token+"\n")),
				Credential: cyclonev1alpha1.ClusterCredential{Server: "https://other.example", BearerToken: "other"},
			},
			want: func(g Gomega, cfg *restConfig) { g.Expect(cfg.Host).To(Equal("https://far.example:6443")) },
		},
		{
			name:       "A Secret without the key is named with the key.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: &cyclonev1alpha1.SecretKeyReference{Namespace: "creds", Name: "token", Key: "config"}},
			wantField:  "secret creds/token key config",
			wantReason: "no such key",
		},
		{
			name:       "An exec plugin in a Secret's kubeconfig is refused.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: addSecret("exec", kubeconfigV1(server, "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/steal}\n"))},
			wantField:  "secret creds/exec key value: users[u].exec",
			wantReason: "exec credential plugins (/bin/steal) are refused",
		},
		{
			name:       "An auth-provider plugin in a Secret's kubeconfig is refused.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: addSecret("gcp", kubeconfigV1(server, "    auth-provider: {name: gcp}\n"))},
			wantField:  "secret creds/gcp key value: users[u].auth-provider",
			wantReason: "auth-provider plugins (gcp) are refused",
		},
		{
			name:       "A token file in a Secret's kubeconfig is refused.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: addSecret("tokenfile", kubeconfigV1(server, "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n"))},
			wantField:  "secret creds/tokenfile key value: users[u].tokenFile",
			wantReason: "file paths are refused",
		},
		{
			name:       "A client key file in a Secret's kubeconfig is refused.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: addSecret("keyfile", kubeconfigV1(server, "    client-certificate-data: Zm9v\n    client-key: /etc/gyre/tls.key\n"))},
			wantField:  "secret creds/keyfile key value: users[u].client-key",
			wantReason: "file paths are refused",
		},
		{
			name:       "A CA file in a Secret's kubeconfig is refused.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: addSecret("cafile", kubeconfigV1(server+"    certificate-authority: /etc/ssl/ca.pem\n", "    token: "+token+"\n"))},
			wantField:  "secret creds/cafile key value: clusters[c].certificate-authority",
			wantReason: "file paths are refused",
		},
		{
			name:       "A Secret that holds no kubeconfig says so.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: addSecret("garbage", []byte("clusters: 3\n"))},
			wantField:  "secret creds/garbage key value",
			wantReason: "not a kubeconfig",
		},
		{
			name: "An inline server, bearer token and CA make the config.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server: "https://far.example:6443", BearerToken: token,
				TLSClientConfig: &cyclonev1alpha1.TLSClientConfig{CAData: caPEM},
			}},
			want: func(g Gomega, cfg *restConfig) {
				g.Expect(cfg.Host).To(Equal("https://far.example:6443"))
				g.Expect(cfg.BearerToken).To(Equal(token))
				g.Expect(cfg.CAData).To(Equal(caPEM))
				g.Expect(cfg.Insecure).To(BeFalse())
			},
		},
		{
			name: "An inline user and password, insecure, make the config.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server: "https://far.example:6443", User: "admin", Password: password,
				TLSClientConfig: &cyclonev1alpha1.TLSClientConfig{Insecure: true},
			}},
			want: func(g Gomega, cfg *restConfig) {
				g.Expect(cfg.Username).To(Equal("admin"))
				g.Expect(cfg.Password).To(Equal(password))
				g.Expect(cfg.Insecure).To(BeTrue())
			},
		},
		{
			name: "An inline credential without tlsClientConfig verifies the server, unlike Cyclone.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server: "https://far.example:6443", BearerToken: token,
			}},
			want: func(g Gomega, cfg *restConfig) { g.Expect(cfg.Insecure).To(BeFalse()) },
		},
		{
			name: "An inline CA file is refused.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server: "https://far.example:6443", BearerToken: token,
				TLSClientConfig: &cyclonev1alpha1.TLSClientConfig{CAFile: "/etc/ssl/ca.pem"},
			}},
			wantField:  "spec.credential.tlsClientConfig.caFile",
			wantReason: "file paths are refused",
		},
		{
			name: "Insecure with a CA is refused, since client-go would fail on it later.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server: "https://far.example:6443", BearerToken: token,
				TLSClientConfig: &cyclonev1alpha1.TLSClientConfig{Insecure: true, CAData: caPEM},
			}},
			wantField:  "spec.credential.tlsClientConfig",
			wantReason: "insecure and caData are both set",
		},
		{
			name: "A bearer token with a user and password is refused.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server: "https://far.example:6443", BearerToken: token, User: "admin", Password: password,
			}},
			wantField:  "spec.credential",
			wantReason: "bearerToken and user/password are both set",
		},
		{
			name:       "Credentials without a server are refused.",
			spec:       cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{BearerToken: token}},
			wantField:  "spec.credential.server",
			wantReason: "not set",
		},
		{
			name:       "An empty spec says what to set.",
			wantField:  "spec",
			wantReason: "neither secretRef nor credential is set",
		},
		{
			name: "Cyclone's kubeConfig with client certificate data makes the config; its extensions are ignored.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				Server:     "https://ignored.example",
				KubeConfig: cycloneKubeconfig("https://far.example:6443", caPEM, certUser(certPEM, keyPEM)),
			}},
			want: func(g Gomega, cfg *restConfig) {
				g.Expect(cfg.Host).To(Equal("https://far.example:6443"))
				g.Expect(cfg.CAData).To(Equal(caPEM))
				g.Expect(cfg.CertData).To(Equal(certPEM))
				g.Expect(cfg.KeyData).To(Equal(keyPEM))
			},
		},
		{
			name: "A kubeConfig in kubectl's shape is accepted too.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				KubeConfig: &runtime.RawExtension{Raw: []byte(`{"apiVersion": "v1", "kind": "Config",
"clusters": [{"name": "c", "cluster": {"server": "https://far.example:6443"}}],
"users": [{"name": "u", "user": {"token": "` + token + `"}}],
"contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
"current-context": "x"}`)},
			}},
			want: func(g Gomega, cfg *restConfig) { g.Expect(cfg.BearerToken).To(Equal(token)) },
		},
		{
			name: "An exec plugin in Cyclone's kubeConfig is refused.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				KubeConfig: cycloneKubeconfig("https://far.example:6443", caPEM, `{"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}}`),
			}},
			wantField:  "spec.credential.kubeConfig.users[admin].exec",
			wantReason: "exec credential plugins (aws) are refused",
		},
		{
			name: "A token file in Cyclone's kubeConfig is refused.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				KubeConfig: cycloneKubeconfig("https://far.example:6443", caPEM, `{"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}`),
			}},
			wantField:  "spec.credential.kubeConfig.users[admin].tokenFile",
			wantReason: "file paths are refused",
		},
		{
			name: "A kubeConfig whose current context is missing says so.",
			spec: cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{
				KubeConfig: &runtime.RawExtension{Raw: []byte(`{"clusters": {}, "users": {}, "contexts": {}, "current-context": "far"}`)},
			}},
			wantField:  "spec.credential.kubeConfig.current-context",
			wantReason: `context "far" not found`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ec := &cyclonev1alpha1.ExecutionCluster{ObjectMeta: metav1.ObjectMeta{Name: "far", Generation: 1}, Spec: tc.spec}
			cfg, version, err := clusters.Config(context.Background(), secrets, ec)
			if tc.want != nil {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(version).NotTo(BeEmpty())
				tc.want(g, &restConfig{cfg.Host, cfg.BearerToken, cfg.Username, cfg.Password, cfg.Insecure, cfg.CAData, cfg.CertData, cfg.KeyData})
				return
			}
			var cerr *clusters.CredentialError
			g.Expect(errors.As(err, &cerr)).To(BeTrue(), "want a *CredentialError, got %v", err)
			g.Expect(cerr.Cluster).To(Equal("far"))
			g.Expect(cerr.Field).To(Equal(tc.wantField))
			g.Expect(cerr.Reason).To(ContainSubstring(tc.wantReason))
			g.Expect(err.Error()).To(HavePrefix("execution cluster far: " + tc.wantField + ": "))
			for _, secret := range []string{token, password, "s3cret-key", base64.StdEncoding.EncodeToString(keyPEM)} {
				g.Expect(strings.Contains(err.Error(), secret)).To(BeFalse(), "the error shows a credential: %v", err)
			}
		})
	}

	t.Run("A missing Secret is an error to retry, not a CredentialError.", func(t *testing.T) {
		g := NewWithT(t)
		ec := &cyclonev1alpha1.ExecutionCluster{ObjectMeta: metav1.ObjectMeta{Name: "far"}, Spec: cyclonev1alpha1.ExecutionClusterSpec{
			SecretRef: &cyclonev1alpha1.SecretKeyReference{Namespace: "creds", Name: "nope"},
		}}
		_, _, err := clusters.Config(context.Background(), secrets, ec)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		g.Expect(errors.As(err, new(*clusters.CredentialError))).To(BeFalse())
		g.Expect(err.Error()).To(ContainSubstring("execution cluster far: spec.secretRef: secret creds/nope"))
	})
}

// restConfig holds the fields of a rest.Config the cases check.
type restConfig struct {
	Host, BearerToken, Username, Password string
	Insecure                              bool
	CAData, CertData, KeyData             []byte
}

func TestClusterConfig_version(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: "creds", Name: "kc"}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, ResourceVersion: "10"},
		Data:       map[string][]byte{"value": kubeconfigV1("    server: https://far.example\n", "    token: t\n")},
	}
	secrets := secretReader{key: secret}
	version := func(ec *cyclonev1alpha1.ExecutionCluster) string {
		_, v, err := clusters.Config(ctx, secrets, ec)
		g.Expect(err).NotTo(HaveOccurred())
		return v
	}

	inline := &cyclonev1alpha1.ExecutionCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "far", Generation: 1, ResourceVersion: "5"},
		Spec:       cyclonev1alpha1.ExecutionClusterSpec{Credential: cyclonev1alpha1.ClusterCredential{Server: "https://far.example", BearerToken: "t"}},
	}
	v1 := version(inline)
	inline.ResourceVersion = "6" // a label changed
	g.Expect(version(inline)).To(Equal(v1), "a metadata edit keeps the connection")
	inline.Generation = 2
	g.Expect(version(inline)).NotTo(Equal(v1), "a spec edit reconnects")

	ref := &cyclonev1alpha1.ExecutionCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "far", Generation: 1},
		Spec:       cyclonev1alpha1.ExecutionClusterSpec{SecretRef: &cyclonev1alpha1.SecretKeyReference{Namespace: key.Namespace, Name: key.Name}},
	}
	s1 := version(ref)
	g.Expect(version(ref)).To(Equal(s1))
	secret.ResourceVersion = "11"
	s2 := version(ref)
	g.Expect(s2).NotTo(Equal(s1), "a new Secret reconnects")
	ref.Generation = 2
	g.Expect(version(ref)).NotTo(Equal(s2), "a changed secretRef reconnects")
}
