package tenants

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// ErrClusterNotFound is returned for an ExecutionCluster that does not
// exist; a Tenant naming it waits until it does.
var ErrClusterNotFound = errors.New("execution cluster not found")

// Clients hands out clients to the control cluster and to execution
// clusters. A client to an execution cluster is made from the kubeconfig
// in its ExecutionCluster's Secret, kept, and made again when the Secret's
// resourceVersion changes. It is safe for concurrent use.
type Clients struct {
	// Control writes to the control cluster.
	Control client.Client
	// Reader reads ExecutionClusters and their Secrets. It should read
	// the API server directly (a manager's APIReader), so that Secrets
	// are never cached in the controller's memory.
	Reader client.Reader
	// Scheme of the clients made; Control's when nil.
	Scheme *runtime.Scheme
	// WrapConfig, when set, may change the rest.Config of each execution
	// cluster before its client is made (rate limits, transports).
	WrapConfig func(*rest.Config)

	mu     sync.Mutex
	remote map[string]remote
}

type remote struct {
	secretVersion string
	client        client.Client
}

// Get returns a client to the named ExecutionCluster, or Control for
// ControlCluster.
func (cs *Clients) Get(ctx context.Context, name string) (client.Client, error) {
	if name == ControlCluster {
		return cs.Control, nil
	}
	ec := &cyclonev1alpha1.ExecutionCluster{}
	if err := cs.Reader.Get(ctx, client.ObjectKey{Name: name}, ec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrClusterNotFound, name)
		}
		return nil, fmt.Errorf("execution cluster %s: %w", name, err)
	}
	ref := ec.Spec.SecretRef
	if ref == nil {
		return nil, fmt.Errorf("execution cluster %s: spec.secretRef is not set; gyre reaches execution clusters only through a kubeconfig Secret", name)
	}
	key := ref.Key
	if key == "" {
		key = "value"
	}
	secret := &corev1.Secret{}
	if err := cs.Reader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, secret); err != nil {
		return nil, fmt.Errorf("execution cluster %s: secret %s/%s: %w", name, ref.Namespace, ref.Name, err)
	}

	cs.mu.Lock()
	defer cs.mu.Unlock()
	if r, ok := cs.remote[name]; ok && r.secretVersion == secret.ResourceVersion {
		return r.client, nil
	}
	data, ok := secret.Data[key]
	if !ok {
		return nil, fmt.Errorf("execution cluster %s: secret %s/%s has no key %q", name, ref.Namespace, ref.Name, key)
	}
	cfg, err := RESTConfig(data)
	if err != nil {
		return nil, fmt.Errorf("execution cluster %s: kubeconfig in secret %s/%s key %s: %w", name, ref.Namespace, ref.Name, key, err)
	}
	if cs.WrapConfig != nil {
		cs.WrapConfig(cfg)
	}
	scheme := cs.Scheme
	if scheme == nil {
		scheme = cs.Control.Scheme()
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("execution cluster %s: %w", name, err)
	}
	if cs.remote == nil {
		cs.remote = map[string]remote{}
	}
	cs.remote[name] = remote{secretVersion: secret.ResourceVersion, client: c}
	return c, nil
}

// RESTConfig turns a kubeconfig into a rest.Config for its current
// context. It refuses what would make the controller run a program or
// read its own files: exec credential plugins, auth-provider plugins and
// paths to token, certificate or key files. Credentials must be inline.
func RESTConfig(kubeconfig []byte) (*rest.Config, error) {
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	kctx, ok := raw.Contexts[raw.CurrentContext]
	if !ok {
		return nil, fmt.Errorf("current context %q not found", raw.CurrentContext)
	}
	if err := checkAuthInfo(kctx.AuthInfo, raw.AuthInfos[kctx.AuthInfo]); err != nil {
		return nil, err
	}
	if c := raw.Clusters[kctx.Cluster]; c != nil && c.CertificateAuthority != "" {
		return nil, fmt.Errorf("cluster %q: certificate-authority file paths are refused; inline certificate-authority-data", kctx.Cluster)
	}
	return clientcmd.NewDefaultClientConfig(*raw, nil).ClientConfig()
}

func checkAuthInfo(name string, a *clientcmdapi.AuthInfo) error {
	switch {
	case a == nil:
		return nil // anonymous
	case a.Exec != nil:
		return fmt.Errorf("user %q: exec credential plugins (%s) are refused: the controller runs no programs from a kubeconfig; use a token or client certificate", name, a.Exec.Command)
	case a.AuthProvider != nil:
		return fmt.Errorf("user %q: auth-provider plugins (%s) are refused; use a token or client certificate", name, a.AuthProvider.Name)
	case a.TokenFile != "" || a.ClientCertificate != "" || a.ClientKey != "":
		return fmt.Errorf("user %q: token and certificate file paths are refused: they would read the controller's own files; inline the credentials", name)
	}
	return nil
}
