package tenants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
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
	// Created lists the namespaces of the control cluster that this
	// Provision found missing and applied, sorted. Nothing was in them
	// when they were read; what is in them now was made since, so a
	// caller may take them as empty as the read found them, as
	// Provision itself does for a worker namespace it created.
	Created []string
}

// Provision makes a tenant's namespace on the control cluster and its
// worker namespace, quota, PVC and RBAC on each of its execution clusters
// match the Tenant, putting back what was changed or deleted. Objects
// that already match are not written. A failing cluster does not stop the
// others; every failure is in the returned error.
//
// live, when not nil, reads the metadata of the control cluster's objects
// labelled with convention.TenantLabel from a cache (see Applier.Live), so that
// checking a provisioned tenant there costs no request.
func Provision(ctx context.Context, cs *Clients, live client.Reader, t *gyrev1alpha1.Tenant) (Result, error) {
	worker, err := WorkerObjects(t)
	if err != nil {
		// The Tenant's namespace on the control cluster does not
		// depend on what is wrong with its worker objects.
		var res Result
		missing, cerr := provisionCluster(ctx, cs.Control, live, t, ControlObjects(t), ControlCluster, &res)
		res.Created = created(missing, cerr)
		return res, errors.Join(cerr, err)
	}
	// The clusters do not depend on each other: each is provisioned at
	// once, and what each wrote and failed is reported in cluster order.
	clusters := Clusters(t)
	results := make([]Result, 1+len(clusters))
	errs := make([]error, 1+len(clusters))
	var g errgroup.Group
	g.Go(func() error {
		var missing map[string]bool
		missing, errs[0] = provisionCluster(ctx, cs.Control, live, t, ControlObjects(t), ControlCluster, &results[0])
		results[0].Created = created(missing, errs[0])
		return nil
	})
	for i, name := range clusters {
		g.Go(func() error {
			errs[1+i] = provisionWorker(ctx, cs, live, t, worker, name, &results[1+i])
			return nil
		})
	}
	_ = g.Wait() // the errors are in errs
	var res Result
	for _, r := range results {
		res.Written = append(res.Written, r.Written...)
		res.Created = append(res.Created, r.Created...)
	}
	sort.Strings(res.Created)
	return res, errors.Join(errs...)
}

// created returns the namespaces of missing, sorted, unless provisioning
// failed: a namespace that was not applied is nobody's yet, and may be
// made by someone else before the next try.
func created(missing map[string]bool, err error) []string {
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(missing))
	for n := range missing {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// provisionWorker provisions a tenant's worker namespace on one execution
// cluster, and deletes what the Tenant no longer asks for there.
func provisionWorker(ctx context.Context, cs *Clients, live client.Reader, t *gyrev1alpha1.Tenant, worker []*unstructured.Unstructured, name string, res *Result) error {
	c, err := cs.Get(ctx, name)
	if err != nil {
		return err
	}
	var cached client.Reader
	if name == ControlCluster {
		cached = live
	}
	missing, err := provisionCluster(ctx, c, cached, t, worker, name, res)
	if err != nil {
		return err
	}
	if name == ControlCluster {
		res.Created = created(missing, nil)
	}
	if missing[convention.WorkerNamespace(t.Name)] {
		return nil // made just now: nothing stale can be in it
	}
	var stale []client.Object
	if len(t.Spec.Quota) == 0 {
		stale = append(stale, &corev1.ResourceQuota{})
	}
	if len(workerRules(t)) == 0 {
		stale = append(stale, &rbacv1.RoleBinding{}, &rbacv1.Role{})
	}
	var errs []error
	for _, o := range stale {
		if err := deleteStale(ctx, c, cached, o, t.Name, name, res); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// provisionCluster applies objs to one cluster once it is sure gyre may
// manage every one of them that exists already. It returns the
// namespaces of objs that were missing before.
func provisionCluster(ctx context.Context, c client.Client, live client.Reader, t *gyrev1alpha1.Tenant, objs []*unstructured.Unstructured, cluster string, res *Result) (map[string]bool, error) {
	missing, err := checkOwnership(ctx, c, live, t.Name, objs, cluster)
	if err != nil {
		return nil, err
	}
	return missing, applyObjects(ctx, c, live, objs, cluster, res)
}

// checkOwnership refuses to take over objects gyre did not create for
// tenant: an existing object must carry convention.ManagedByLabel and the tenant's
// convention.TenantLabel, or the annotation gyrev1alpha1.AdoptAnnotation "true" put
// there by whoever owns it. Without this a Tenant could be named so as to
// take over a namespace of someone else, another tenant's included, with
// everything running in it.
//
// Live holds the metadata of what gyre labelled, so checking a
// provisioned tenant costs no request; what Live lacks is read from the
// cluster. Namespaces are read first: nothing can exist in one that does
// not, so a new tenant's other objects need no read at all. Someone may
// make the namespace and an object in it right after the read, as they
// may make the namespace itself right after it was found missing: the
// check narrows that window to the apply that follows, it cannot close it.
// It returns the namespaces it found missing.
func checkOwnership(ctx context.Context, c client.Client, live client.Reader, tenant string, objs []*unstructured.Unstructured, cluster string) (map[string]bool, error) {
	errs := make([]error, len(objs))
	var mu sync.Mutex
	missing := map[string]bool{} // namespaces read and found missing
	for _, namespaces := range []bool{true, false} {
		var g errgroup.Group
		for i, o := range objs {
			isNamespace := o.GroupVersionKind().GroupKind() == schema.GroupKind{Kind: "Namespace"}
			if isNamespace != namespaces || (!namespaces && missing[o.GetNamespace()]) {
				continue
			}
			m := &metav1.PartialObjectMetadata{}
			m.SetGroupVersionKind(o.GroupVersionKind())
			if live != nil {
				if err := live.Get(ctx, client.ObjectKeyFromObject(o), m); err == nil && owns(m, tenant) {
					continue
				}
			}
			g.Go(func() error {
				exists, err := checkOwner(ctx, c, tenant, o, m, cluster)
				errs[i] = err
				if isNamespace && !exists && err == nil {
					mu.Lock()
					missing[o.GetName()] = true
					mu.Unlock()
				}
				return nil
			})
		}
		_ = g.Wait() // the errors are in errs, in the order of objs
	}
	return missing, errors.Join(errs...)
}

// checkOwner reads o from the cluster into m and refuses it unless it is
// missing, gyre's for tenant, or annotated for adoption. It reports
// whether o exists.
func checkOwner(ctx context.Context, c client.Client, tenant string, o *unstructured.Unstructured, m *metav1.PartialObjectMetadata, cluster string) (bool, error) {
	err := c.Get(ctx, client.ObjectKeyFromObject(o), m)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("provision cluster %s: read %s: %w", clusterName(cluster), describe(o), err)
	}
	if owns(m, tenant) || m.Annotations[gyrev1alpha1.AdoptAnnotation] == "true" {
		return true, nil
	}
	return true, notOwnedError(fmt.Sprintf("provision cluster %s: %s exists and gyre did not create it for tenant %s (labels %s=%s, %s=%s): annotate it %s=true to let gyre manage it",
		clusterName(cluster), describe(o), tenant, convention.ManagedByLabel, convention.ManagedBy, convention.TenantLabel, tenant, gyrev1alpha1.AdoptAnnotation))
}

// ErrNotOwned is matched (errors.Is) by a provisioning error that refused
// to take over an object gyre did not create. Nothing of the tenant may be
// applied then: its namespaces may be someone else's.
var ErrNotOwned = errors.New("object not created by gyre")

// notOwnedError is the refusal of checkOwnership; its message names the
// object and how to allow the takeover.
type notOwnedError string

func (e notOwnedError) Error() string { return string(e) }

// Is makes errors.Is(err, ErrNotOwned) find a refusal in a joined error.
func (e notOwnedError) Is(target error) bool { return target == ErrNotOwned }

// owns reports whether gyre created an object for tenant, or has adopted it.
func owns(m *metav1.PartialObjectMetadata, tenant string) bool {
	return m.Labels[convention.ManagedByLabel] == convention.ManagedBy && m.Labels[convention.TenantLabel] == tenant
}

// describe names an object as "Kind namespace/name", or "Kind name".
func describe(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetKind() + " " + o.GetName()
	}
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// applyObjects server-side applies objs to one cluster, namespaces first: the
// objects in a namespace cannot be created before it. RoleBindings come
// last, once their Role exists: gyre holds no "bind" right, so the API
// server allows a binding only after checking that gyre itself holds
// every right of the Role it names, which it cannot do for a Role not
// created yet.
func applyObjects(ctx context.Context, c client.Client, live client.Reader, objs []*unstructured.Unstructured, cluster string, res *Result) error {
	a := &apply.Applier{Client: c, Live: live, Owner: ssa.Owner{Field: convention.FieldManager, Group: convention.FieldManagerGroup}}
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

// deleteStale removes an object gyre made in the worker namespace that
// the Tenant no longer asks for (its ResourceQuota, the worker's Role and
// RoleBinding), and only if gyre made it for this tenant. The object's
// kind is o's; its name is what WorkerObjects gives that kind.
func deleteStale(ctx context.Context, c client.Client, live client.Reader, o client.Object, tenant, cluster string, res *Result) error {
	gvks, _, err := c.Scheme().ObjectKinds(o)
	if err != nil || len(gvks) == 0 {
		return fmt.Errorf("provision cluster %s: kind of %T: %v", clusterName(cluster), o, err)
	}
	kind := gvks[0].Kind
	name := convention.WorkerServiceAccount
	if kind == "ResourceQuota" {
		name = QuotaName
	}
	key := client.ObjectKey{Namespace: convention.WorkerNamespace(tenant), Name: name}
	if live != nil {
		// The cache holds every such object gyre labelled: if it has
		// none, there is nothing of gyre's to delete.
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvks[0])
		if err := live.Get(ctx, key, m); apierrors.IsNotFound(err) {
			return nil
		}
	}
	err = c.Get(ctx, key, o)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("provision cluster %s: get %s %s: %w", clusterName(cluster), kind, key, err)
	}
	if o.GetLabels()[convention.TenantLabel] != tenant {
		return nil
	}
	if err := c.Delete(ctx, o, client.Preconditions{UID: ptr.To(o.GetUID())}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("provision cluster %s: delete %s %s: %w", clusterName(cluster), kind, key, err)
	}
	res.Written = append(res.Written, clusterName(cluster)+": "+kind+"/"+key.Namespace+"/"+key.Name+" deleted")
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
	errs = append(errs, removeNamespace(ctx, cs.Control, t.Name, convention.Namespace(t.Name), ControlCluster))
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
	return removeNamespace(ctx, c, tenant, convention.WorkerNamespace(tenant), cluster)
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
	if ns.Labels[convention.TenantLabel] != tenant || ns.DeletionTimestamp != nil {
		return nil // not gyre's, or already going
	}
	// The deletion protection policy (config/protection) guards against
	// deletions by mistake; this one follows a deleted Tenant, which the
	// policy let through, or a cluster the Tenant dropped.
	if ns.Annotations[gyrev1alpha1.DeletionProtectionAnnotation] != gyrev1alpha1.DeletionProtectionDisabled {
		patch := client.MergeFrom(ns.DeepCopy())
		metav1.SetMetaDataAnnotation(&ns.ObjectMeta, gyrev1alpha1.DeletionProtectionAnnotation, gyrev1alpha1.DeletionProtectionDisabled)
		if err := c.Patch(ctx, ns, patch); apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return fmt.Errorf("remove namespace %s on cluster %s: lift its deletion protection: %w", name, clusterName(cluster), err)
		}
	}
	if err := c.Delete(ctx, ns, client.Preconditions{UID: ptr.To(ns.UID)}); client.IgnoreNotFound(err) != nil {
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
