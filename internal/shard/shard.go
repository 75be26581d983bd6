// Package shard decides which replicas of gyre handle a Tenant, its
// Repository, and everything in the Tenant's namespaces.
//
// A shard is the value of convention.ShardLabel on Repositories and
// Tenants, as Flux shards on sharding.fluxcd.io/key: the manager caches
// only its shard's Repositories and Tenants (Selector), and the engine and
// the cron triggers act on a namespace's runs and triggers only when its
// Tenant is in their shard (Namespaces).
package shard

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// Validate refuses a shard name that cannot be a label value, or the
// empty name a flag would give by mistake ("" is the replicas without
// --shard). A name is also part of the shard's leader election lease,
// so it must be a DNS label: lower case letters, digits and '-'.
func Validate(name string) error {
	if name == "" {
		return fmt.Errorf("shard name is empty: leave --shard out to handle the Repositories and Tenants without the %s label", convention.ShardLabel)
	}
	if errs := validation.IsValidLabelValue(name); len(errs) > 0 {
		return fmt.Errorf("shard name %q is not a valid value of label %s: %s", name, convention.ShardLabel, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("shard name %q must name the shard's leader election lease too: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// Selector selects the Repositories and Tenants of shard name: those
// labelled with it, or, for "", those without the label. A label with an
// empty value is in no shard, as in Flux.
func Selector(name string) labels.Selector {
	op, values := selection.Equals, []string{name}
	if name == "" {
		op, values = selection.DoesNotExist, nil
	}
	req, err := labels.NewRequirement(convention.ShardLabel, op, values)
	if err != nil {
		// Validate has vetted name; the key is a constant.
		panic(fmt.Sprintf("shard selector: %v", err))
	}
	return labels.NewSelector().Add(*req)
}

// Owns reports whether an object with these labels is in shard name,
// as Selector decides.
func Owns(name string, objLabels map[string]string) bool {
	return Selector(name).Matches(labels.Set(objLabels))
}

// Namespaces tells whether this replica acts on the runs, triggers and
// Pods of a namespace: those of a Tenant's namespace follow the Tenant's
// shard, and runs in a namespace of no Tenant (which the engine refuses
// with NoTenant) belong to the replicas without a shard.
type Namespaces struct {
	// Shard is this replica's shard; "" for the replicas without --shard.
	Shard string
	// Cache reads Tenants from the manager's cache, which holds only
	// this shard's.
	Cache client.Reader
	// Live reads a Tenant the cache lacks from the API server.
	Live client.Reader
}

// Owns reports whether the objects of namespace ns are this replica's.
//
// The cache decides in the common case. A Tenant missing from it is read
// live: it may be another shard's, or one this shard has not seen yet
// (the cache adds it a moment later and the engine's and cron's Tenant
// watches enqueue its namespace again), or none at all.
func (n Namespaces) Owns(ctx context.Context, ns string) (bool, error) {
	name, ok := convention.TenantOf(ns)
	if !ok {
		return n.Shard == "", nil
	}
	tn := &gyrev1alpha1.Tenant{}
	err := n.Cache.Get(ctx, types.NamespacedName{Name: name}, tn)
	if apierrors.IsNotFound(err) {
		err = n.Live.Get(ctx, types.NamespacedName{Name: name}, tn)
		if apierrors.IsNotFound(err) {
			return n.Shard == "", nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("get tenant %s: %w", name, err)
	}
	return Owns(n.Shard, tn.Labels), nil
}
