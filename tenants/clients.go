package tenants

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/clusters"
)

// ErrClusterNotFound is returned for an ExecutionCluster that does not
// exist; a Tenant naming it waits until it does.
var ErrClusterNotFound = clusters.ErrNotFound

// Clients hands out clients to the control cluster and to execution
// clusters. A client to an execution cluster is made from its
// ExecutionCluster's credentials (see clusters.Config), kept, and made
// again when they change. It is safe for concurrent use.
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

	once   sync.Once
	remote *clusters.Set[client.Client]
}

// Get returns a client to the named ExecutionCluster, or Control for
// ControlCluster.
func (cs *Clients) Get(ctx context.Context, name string) (client.Client, error) {
	if name == ControlCluster {
		return cs.Control, nil
	}
	cs.once.Do(func() {
		cs.remote = &clusters.Set[client.Client]{Reader: cs.Reader, Connect: cs.connect}
	})
	return cs.remote.Get(ctx, name)
}

func (cs *Clients) connect(_ context.Context, name string, cfg *rest.Config) (client.Client, error) {
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
	return c, nil
}
