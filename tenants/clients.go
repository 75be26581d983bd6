package tenants

import (
	"context"
	"errors"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// ErrClusterNotFound is returned for an ExecutionCluster that does not
// exist; a Tenant naming it waits until it does.
var ErrClusterNotFound = errors.New("execution cluster not found")

// Clients hands out clients to the control cluster and to execution
// clusters. A client to an execution cluster is made from its
// ExecutionCluster's credentials (see ClusterConfig), kept, and made again
// when they change. It is safe for concurrent use.
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
	// version is ClusterConfig's version of the credentials the client
	// was made from.
	version string
	client  client.Client
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
	cfg, version, err := ClusterConfig(ctx, cs.Reader, ec)
	if err != nil {
		return nil, err
	}

	cs.mu.Lock()
	defer cs.mu.Unlock()
	if r, ok := cs.remote[name]; ok && r.version == version {
		return r.client, nil
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
	cs.remote[name] = remote{version: version, client: c}
	return c, nil
}
