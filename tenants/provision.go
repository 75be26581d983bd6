package tenants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

// ControlCluster is the name Clusters gives the control cluster.
const ControlCluster = ""

// Clusters returns the execution clusters a tenant's targets name, sorted
// and without duplicates; ControlCluster stands for a target that names
// none.
func Clusters(t *gyrev1alpha1.Tenant) []string {
	seen := map[string]bool{}
	if len(t.Spec.Clusters) == 0 {
		seen[ControlCluster] = true
	}
	for _, c := range t.Spec.Clusters {
		name := ControlCluster
		if c.ExecutionClusterRef != nil {
			name = c.ExecutionClusterRef.Name
		}
		seen[name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Result says what a Provision wrote.
type Result struct {
	// Written lists the objects created or changed, as
	// "<cluster>: Kind/namespace/name"; empty when everything matched.
	Written []string
}

// Provision makes a tenant's namespace on the control cluster and its
// worker namespace, quota, PVC and RBAC on each of its execution clusters
// match the Tenant, putting back what was changed or deleted. Objects
// that already match are not written. A failing cluster does not stop the
// others; every failure is in the returned error.
//
// live, when not nil, reads the metadata of the control cluster's objects
// labelled with TenantLabel from a cache (see Applier.Live), so that
// checking a provisioned tenant there costs no request.
func Provision(ctx context.Context, cs *Clients, live client.Reader, t *gyrev1alpha1.Tenant) (Result, error) {
	var res Result
	var errs []error
	if err := apply(ctx, cs.Control, live, ControlObjects(t), ControlCluster, &res); err != nil {
		errs = append(errs, err)
	}
	worker, err := WorkerObjects(t)
	if err != nil {
		return res, err
	}
	for _, name := range Clusters(t) {
		c, err := cs.Get(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var cached client.Reader
		if name == ControlCluster {
			cached = live
		}
		if err := apply(ctx, c, cached, worker, name, &res); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(t.Spec.Quota) == 0 {
			if err := deleteQuota(ctx, c, cached, t.Name, name, &res); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return res, errors.Join(errs...)
}

// apply server-side applies objs to one cluster, namespaces first: the
// objects in a namespace cannot be created before it. RoleBindings come
// last, once their Role exists: gyre holds no "bind" right, so the API
// server allows a binding only after checking that gyre itself holds
// every right of the Role it names, which it cannot do for a Role not
// created yet.
func apply(ctx context.Context, c client.Client, live client.Reader, objs []*unstructured.Unstructured, cluster string, res *Result) error {
	a := &Applier{Client: c, Live: live}
	var first, bindings []*unstructured.Unstructured
	for _, o := range objs {
		o = o.DeepCopy() // the applier stamps what it applies
		if o.GroupVersionKind().GroupKind() == rbacv1.SchemeGroupVersion.WithKind("RoleBinding").GroupKind() {
			bindings = append(bindings, o)
		} else {
			first = append(first, o)
		}
	}
	for _, batch := range [][]*unstructured.Unstructured{first, bindings} {
		if len(batch) == 0 {
			continue
		}
		cs, err := a.Apply(ctx, batch)
		if cs != nil {
			for _, e := range cs.Entries {
				if e.Action == ssa.CreatedAction || e.Action == ssa.ConfiguredAction {
					res.Written = append(res.Written, clusterName(cluster)+": "+e.Subject)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("provision cluster %s: %w", clusterName(cluster), err)
		}
	}
	return nil
}

// deleteQuota removes the ResourceQuota gyre made once the Tenant no
// longer sets a quota, and only if gyre made it.
func deleteQuota(ctx context.Context, c client.Client, live client.Reader, tenant, cluster string, res *Result) error {
	key := client.ObjectKey{Namespace: WorkerNamespace(tenant), Name: QuotaName}
	if live != nil {
		// The cache holds every quota gyre labelled: if it has none,
		// there is nothing of gyre's to delete.
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ResourceQuota"))
		if err := live.Get(ctx, key, m); apierrors.IsNotFound(err) {
			return nil
		}
	}
	q := &corev1.ResourceQuota{}
	err := c.Get(ctx, key, q)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("provision cluster %s: get quota: %w", clusterName(cluster), err)
	}
	if q.Labels[TenantLabel] != tenant {
		return nil
	}
	if err := c.Delete(ctx, q); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("provision cluster %s: delete quota: %w", clusterName(cluster), err)
	}
	res.Written = append(res.Written, clusterName(cluster)+": ResourceQuota/"+q.Namespace+"/"+q.Name+" deleted")
	return nil
}

// Remove deletes a tenant's worker namespace on each of its execution
// clusters, those its status still lists included, and its namespace on
// the control cluster, with everything in them. Only namespaces labelled
// with the tenant are deleted. It does not wait for them to finalise: a
// finalizer that never clears (a PVC still in use, an unreachable
// webhook) must not hold the Tenant forever.
func Remove(ctx context.Context, cs *Clients, t *gyrev1alpha1.Tenant) error {
	var errs []error
	clusters := append(Clusters(t), t.Status.ExecutionClusters...)
	sort.Strings(clusters)
	for _, name := range slices.Compact(clusters) {
		errs = append(errs, Retire(ctx, cs, t.Name, name))
	}
	errs = append(errs, removeNamespace(ctx, cs.Control, t.Name, Namespace(t.Name), ControlCluster))
	return errors.Join(errs...)
}

// Retire deletes a tenant's worker namespace, with everything in it, from
// one cluster, as Remove does. A cluster gyre cannot name any longer
// holds nothing to delete.
func Retire(ctx context.Context, cs *Clients, tenant, cluster string) error {
	c, err := cs.Get(ctx, cluster)
	if errors.Is(err, ErrClusterNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return removeNamespace(ctx, c, tenant, WorkerNamespace(tenant), cluster)
}

func removeNamespace(ctx context.Context, c client.Client, tenant, name, cluster string) error {
	ns := &corev1.Namespace{}
	err := c.Get(ctx, client.ObjectKey{Name: name}, ns)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove namespace %s on cluster %s: %w", name, clusterName(cluster), err)
	}
	if ns.Labels[TenantLabel] != tenant || ns.DeletionTimestamp != nil {
		return nil // not gyre's, or already going
	}
	if err := c.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove namespace %s on cluster %s: %w", name, clusterName(cluster), err)
	}
	return nil
}

func clusterName(name string) string {
	if name == ControlCluster {
		return "control"
	}
	return name
}
