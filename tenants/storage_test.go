package tenants_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/tenants"
)

// TestProvision_storage: every tenant gets the PVC its runs mount, sized
// and classed by spec.storage, or by default when the Tenant sets none.
func TestProvision_storage(t *testing.T) {
	testcluster.Require(t)
	ctx := context.Background()
	cc := newClient(NewWithT(t), control)
	cs := &tenants.Clients{Control: cc, Reader: cc}
	tests := []struct {
		name    string
		tenant  string
		storage *gyrev1alpha1.TenantStorage
		size    string
		class   *string
	}{{
		name:   "A Tenant without spec.storage gets a 10Gi PVC in the cluster's default StorageClass.",
		tenant: "nostorage",
		size:   "10Gi",
	}, {
		name:    "A Tenant with spec.storage gets its size and class.",
		tenant:  "storage",
		storage: &gyrev1alpha1.TenantStorage{Size: resource.MustParse("2Gi"), StorageClassName: ptr.To("fast")},
		size:    "2Gi",
		class:   ptr.To("fast"),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			tenant := controlTenant(tt.tenant)
			tenant.Spec.Storage = tt.storage
			removeAfter(t, cc, tenant.Name)
			_, err := tenants.Provision(ctx, cs, nil, tenant)
			g.Expect(err).NotTo(HaveOccurred())

			pvc := &corev1.PersistentVolumeClaim{}
			g.Expect(cc.Get(ctx, client.ObjectKey{Namespace: convention.WorkerNamespace(tenant.Name), Name: convention.PVCName(tenant.Name)}, pvc)).To(Succeed())
			g.Expect(pvc.Spec.Resources.Requests.Storage().String()).To(Equal(tt.size))
			// Unset, not "": an empty name would ask for no class at all,
			// and the API server gives an unset one the default class.
			g.Expect(pvc.Spec.StorageClassName).To(Equal(tt.class))
			g.Expect(pvc.Labels).To(HaveKeyWithValue(convention.TenantLabel, tenant.Name))
		})
	}
}
