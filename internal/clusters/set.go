package clusters

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// ErrNotFound is returned for an ExecutionCluster that does not exist.
var ErrNotFound = errors.New("execution cluster not found")

// Set keeps one connection of type T to each ExecutionCluster in use,
// made by Connect from the cluster's credentials (see Config), and made
// again when they change. It is safe for concurrent use; connections to
// one cluster are made one at a time.
type Set[T any] struct {
	// Reader reads ExecutionClusters and their Secrets. It should read
	// the API server directly (a manager's APIReader), so that Secrets
	// are never cached in the controller's memory. Required.
	Reader client.Reader
	// Connect makes the connection to the named cluster. Required.
	Connect func(ctx context.Context, name string, cfg *rest.Config) (T, error)
	// Close, when set, ends a connection the Set drops.
	Close func(T)
	// Recheck is how long a connection is handed out before its
	// credentials are read again; 0 reads them on every Get. Reading a
	// kubeconfig Secret costs an API request.
	Recheck time.Duration
	// Clock times Recheck; the real clock when nil.
	Clock clock.PassiveClock

	mu    sync.Mutex
	conns map[string]*conn[T]
}

type conn[T any] struct {
	value T
	// version is Config's version of the credentials the connection was
	// made from.
	version string
	// checked is when the credentials were last compared with version.
	checked time.Time
}

// Get returns the connection to the named ExecutionCluster, connecting
// on first use and again when its credentials changed.
func (s *Set[T]) Get(ctx context.Context, name string) (T, error) {
	var zero T
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c := s.conns[name]; c != nil && s.Recheck > 0 && now.Sub(c.checked) < s.Recheck {
		return c.value, nil
	}
	ec := &cyclonev1alpha1.ExecutionCluster{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Name: name}, ec); err != nil {
		if apierrors.IsNotFound(err) {
			return zero, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return zero, fmt.Errorf("get execution cluster %s: %w", name, err)
	}
	cfg, version, err := Config(ctx, s.Reader, ec)
	if err != nil {
		return zero, err
	}
	if c := s.conns[name]; c != nil {
		if c.version == version {
			c.checked = now
			return c.value, nil
		}
		s.drop(name) // the credentials changed: reconnect
	}
	v, err := s.Connect(ctx, name, cfg)
	if err != nil {
		return zero, err
	}
	if s.conns == nil {
		s.conns = map[string]*conn[T]{}
	}
	s.conns[name] = &conn[T]{value: v, version: version, checked: now}
	return v, nil
}

// Forget drops the connection to a cluster that is gone.
func (s *Set[T]) Forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(name)
}

// CloseAll drops every connection.
func (s *Set[T]) CloseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.conns {
		s.drop(name)
	}
}

func (s *Set[T]) drop(name string) {
	c := s.conns[name]
	if c == nil {
		return
	}
	if s.Close != nil {
		s.Close(c.value)
	}
	delete(s.conns, name)
}

func (s *Set[T]) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}
