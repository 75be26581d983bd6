// Package mgrconfig builds the scheme and the controller-runtime options
// every gyre manager starts from: `gyre controller`, `gyre dev` and the
// envtest suites of each controller, so that tests run the manager main
// runs.
package mgrconfig

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/shard"
)

// Options are the manager's own settings: its servers and leader
// election.
type Options struct {
	// MetricsAddr serves Prometheus metrics; "0" turns them off.
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz; "0" turns them off.
	ProbeAddr string
	// LeaderElection makes one replica of several do the work.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; the in-cluster namespace
	// when empty.
	LeaderElectionNamespace string
	// LeaseDuration is how long a replica waits, after the leader last
	// renewed the lease, before it takes over: the longest a killed
	// leader leaves the work undone. Zero is controller-runtime's 15s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before
	// it stops its controllers; shorter than LeaseDuration so that it
	// stops before another replica may start. Zero is 10s.
	RenewDeadline time.Duration
	// RetryPeriod is how often replicas try to take or renew the lease.
	// Zero is 2s.
	RetryPeriod time.Duration
	// Shard is the value of convention.ShardLabel on the Repositories and
	// Tenants this manager handles; "" handles those without the label.
	Shard string
}

// NewScheme returns a scheme with every kind gyre reads or writes.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		cyclonev1alpha1.AddToScheme,
		gyrev1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Manager turns Options into controller-runtime's.
func (o Options) Manager(scheme *runtime.Scheme) ctrl.Options {
	return ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              LeaderElectionID(o.Shard),
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 durationOrNil(o.LeaseDuration),
		RenewDeadline:                 durationOrNil(o.RenewDeadline),
		RetryPeriod:                   durationOrNil(o.RetryPeriod),
		// No reader of the manager's cache looks at managed fields (the
		// tenant reconciler keeps its own cache for that); dropping them
		// halves what a cached WorkflowRun or Tenant costs to keep and
		// to copy on every read.
		//
		// A shard caches only its own Repositories and Tenants, as Flux's
		// --watch-label-selector does: the others' cost it nothing, and a
		// relabelled one arrives as a creation or leaves as a deletion.
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&gyrev1alpha1.Repository{}: {Label: shard.Selector(o.Shard)},
				&gyrev1alpha1.Tenant{}:     {Label: shard.Selector(o.Shard)},
			},
		},
		// A Secret read through the cache would start an informer that
		// lists and watches every Secret of the cluster and keeps their
		// values in memory. gyre reads the few it needs from the API
		// server; this keeps a read that forgets to do so from caching.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	}
}

// durationOrNil leaves a zero duration to controller-runtime's default.
func durationOrNil(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}

// LeaderElectionID is the lease a shard's replicas elect their leader
// with: each shard has its own, so that shards work side by side and a
// shard's replicas elect among themselves.
func LeaderElectionID(shard string) string {
	if shard == "" {
		return "gyre-controller.gyre.dev"
	}
	return "gyre-controller-" + shard + ".gyre.dev"
}
