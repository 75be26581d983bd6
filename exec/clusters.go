package exec

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/source"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/clusters"
	"github.com/gyreops/gyre/internal/convention"
)

// errClusterNotFound: a run names an ExecutionCluster that does not exist.
var errClusterNotFound = clusters.ErrNotFound

// target is where one run's Pods live.
type target struct {
	// client reads Pods from the cluster's label-filtered cache and
	// writes to its API server.
	client client.Client
	// live reads from the cluster's API server.
	live      client.Reader
	namespace string
	// pvc is the tenant PVC; empty for an emptyDir.
	pvc string
	// level is the Pod Security level of the run's Tenant, which every
	// Pod of the run must meet.
	level string
	// scheduling is the run's Tenant's spec.scheduling, the zero value
	// when it has none: every Pod of the run gets its node selector and
	// tolerations, and may ask for nothing beyond them.
	scheduling *gyrev1alpha1.TenantScheduling
	// pods reads container logs from the cluster's API server.
	pods corev1client.PodsGetter
}

// conn is a connection to one cluster that runs stage Pods.
type conn struct {
	cluster cluster.Cluster
	// stop ends the cluster's cache; nil for the control cluster, whose
	// cache the manager runs.
	stop context.CancelFunc

	podsOnce sync.Once
	pods     corev1client.PodsGetter
	podsErr  error
}

// secretRecheck is how often a connection's credentials are read again to
// notice new ones; reading a kubeconfig Secret on every reconcile would
// cost an API request each time.
const secretRecheck = time.Minute

// clusterSet holds a connection, with a label-filtered Pod cache watched by
// the engine's controller, to the control cluster and to every
// ExecutionCluster in use.
type clusterSet struct {
	scheme  *runtime.Scheme
	secrets client.Reader // Secrets, read live so they are never cached
	// limits holds the rate limits of every connection: the control
	// cluster's, not client-go's default of 5 requests a second.
	limits  *rest.Config
	control *conn
	watch   func(cl cluster.Cluster) source.Source
	clock   clock.PassiveClock

	mu sync.Mutex
	// base is the manager's lifetime, the parent of every remote cache's
	// context. It is kept, against the usual rule, because remote caches
	// start on demand long after Start was called.
	base context.Context
	ctrl controller.Controller

	// remote holds the connections to ExecutionClusters, the type the
	// tenant provisioner keeps its clients in too.
	remoteOnce sync.Once
	remote     *clusters.Set[*conn]
}

// remotes returns the set of connections to ExecutionClusters.
func (cs *clusterSet) remotes() *clusters.Set[*conn] {
	cs.remoteOnce.Do(func() {
		cs.remote = &clusters.Set[*conn]{
			Reader:  cs.secrets,
			Connect: cs.connect,
			Close:   func(c *conn) { c.stop() },
			Recheck: secretRecheck,
			Clock:   cs.clock,
		}
	})
	return cs.remote
}

// newPodCluster connects to a cluster with a cache that holds only the
// engine's Pods.
func newPodCluster(cfg *rest.Config, scheme *runtime.Scheme) (cluster.Cluster, error) {
	selector := labels.SelectorFromSet(labels.Set{convention.LabelManagedBy: convention.ManagedByExec})
	return cluster.New(cfg, func(o *cluster.Options) {
		o.Scheme = scheme
		// A stage Pod's managed fields are nearly half its size, and
		// nothing the engine reads.
		o.Cache.ByObject = map[client.Object]cache.ByObject{&corev1.Pod{}: {Label: selector, Transform: cache.TransformStripManagedFields()}}
	})
}

// Start records the manager's lifetime and stops every remote cache when
// it ends. It makes the set a manager.Runnable.
func (cs *clusterSet) Start(ctx context.Context) error {
	cs.mu.Lock()
	cs.base = ctx
	cs.mu.Unlock()
	<-ctx.Done()
	cs.remotes().CloseAll()
	return nil
}

// get returns the connection to the named ExecutionCluster, "" being the
// control cluster, connecting on first use.
func (cs *clusterSet) get(ctx context.Context, name string) (*conn, error) {
	if name == "" {
		return cs.control, nil
	}
	return cs.remotes().Get(ctx, name)
}

// connect connects to an ExecutionCluster with a Pod cache that the
// engine's controller watches.
func (cs *clusterSet) connect(ctx context.Context, name string, cfg *rest.Config) (*conn, error) {
	if cs.limits != nil {
		cfg.QPS, cfg.Burst = cs.limits.QPS, cs.limits.Burst
	}
	cs.mu.Lock()
	base, watcher := cs.base, cs.ctrl
	cs.mu.Unlock()
	if base == nil || watcher == nil {
		return nil, errors.New("engine not started yet")
	}
	cl, err := newPodCluster(cfg, cs.scheme)
	if err != nil {
		return nil, fmt.Errorf("execution cluster %s: %w", name, err)
	}
	cctx, cancel := context.WithCancel(base)
	go func() {
		if err := cl.Start(cctx); err != nil {
			ctrl.LoggerFrom(cctx).Error(err, "Execution cluster cache stopped", "cluster", name)
		}
	}()
	// Fill the Pod cache before the engine reads it, so that it never
	// mistakes an unsynced cache for missing Pods.
	syncCtx, done := context.WithTimeout(ctx, 30*time.Second)
	defer done()
	if _, err := cl.GetCache().GetInformer(syncCtx, &corev1.Pod{}); err != nil {
		cancel()
		return nil, fmt.Errorf("execution cluster %s: sync pods: %w", name, err)
	}
	if err := watcher.Watch(cs.watch(cl)); err != nil {
		cancel()
		return nil, fmt.Errorf("execution cluster %s: watch pods: %w", name, err)
	}
	return &conn{cluster: cl, stop: cancel}, nil
}

// forget disconnects from an ExecutionCluster that is gone.
func (cs *clusterSet) forget(name string) {
	cs.remotes().Forget(name)
}

// clusterReconciler connects to ExecutionClusters as they appear, so their
// Pods are watched before a run needs them, and disconnects when they go.
type clusterReconciler struct {
	clusters *clusterSet
}

func (r *clusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	_, err := r.clusters.get(ctx, req.Name)
	if errors.Is(err, errClusterNotFound) {
		r.clusters.forget(req.Name)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// The engine reads container logs through the API, so that the Pods of
// remote execution clusters are kept too.
//
// +kubebuilder:rbac:groups="",resources=pods/log,verbs=get

// podsClient returns a client for pods/log on the connection's cluster,
// made on first use.
func (c *conn) podsClient() (corev1client.PodsGetter, error) {
	c.podsOnce.Do(func() {
		var cs *kubernetes.Clientset
		cs, c.podsErr = kubernetes.NewForConfig(c.cluster.GetConfig())
		if cs != nil {
			c.pods = cs.CoreV1()
		}
	})
	return c.pods, c.podsErr
}
