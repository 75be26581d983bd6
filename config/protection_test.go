package config_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/tenants"
)

// TestDeletionProtection: with config/protection installed, the API
// server refuses to delete a Tenant or the namespaces gyre made for it
// until they are annotated gyre.dev/deletion-protection=disabled; gyre's
// own removal of a deleted Tenant's namespaces goes through.
func TestDeletionProtection(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(testcluster.InstallProtection(ctx, cluster.Config)).To(Succeed())
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	admin, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	tenant := &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "guarded"},
		Spec: gyrev1alpha1.TenantSpec{RepositoryRef: gyrev1alpha1.ObjectReference{Name: "pipelines"}}}
	g.Expect(admin.Create(ctx, tenant)).To(Succeed())
	cs := &tenants.Clients{Control: admin, Reader: admin}
	_, err = tenants.Provision(ctx, cs, nil, tenant)
	g.Expect(err).NotTo(HaveOccurred())
	namespaces := []string{convention.Namespace(tenant.Name), convention.WorkerNamespace(tenant.Name)}

	refused := func(g Gomega, err error, msg string) {
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		g.Expect(err.Error()).To(ContainSubstring(msg))
	}
	lift := func(g Gomega, o client.Object) {
		patch := client.MergeFrom(o.DeepCopyObject().(client.Object))
		o.SetAnnotations(map[string]string{gyrev1alpha1.DeletionProtectionAnnotation: gyrev1alpha1.DeletionProtectionDisabled})
		g.Expect(admin.Patch(ctx, o, patch)).To(Succeed())
	}

	t.Run("Deleting a Tenant that is not annotated is refused with the policy's message.", func(t *testing.T) {
		g := NewWithT(t)
		refused(g, admin.Delete(ctx, tenant), "Tenant guarded owns namespaces with its Cyclone objects, runs and PVC data and is protected from deletion: "+
			"annotate it gyre.dev/deletion-protection=disabled to delete it")
	})
	t.Run("Deleting the Tenant's namespaces is refused, naming the tenant.", func(t *testing.T) {
		for _, name := range namespaces {
			g := NewWithT(t)
			refused(g, admin.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}),
				"namespace "+name+" of tenant guarded holds its Cyclone objects, runs or PVC data and is protected from deletion: "+
					"annotate it gyre.dev/deletion-protection=disabled to delete it")
		}
	})
	t.Run("A namespace gyre did not make for a tenant is not protected.", func(t *testing.T) {
		g := NewWithT(t)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plain-", Labels: map[string]string{convention.TenantLabel: "guarded"}}}
		g.Expect(admin.Create(ctx, ns)).To(Succeed())
		g.Expect(admin.Delete(ctx, ns)).To(Succeed())
	})
	t.Run("An annotated namespace of the Tenant is deleted.", func(t *testing.T) {
		g := NewWithT(t)
		other := &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "lifted"}}
		_, err := tenants.Provision(ctx, cs, nil, other)
		g.Expect(err).NotTo(HaveOccurred())
		ns := &corev1.Namespace{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: convention.WorkerNamespace(other.Name)}, ns)).To(Succeed())
		lift(g, ns)
		g.Expect(admin.Delete(ctx, ns)).To(Succeed())
	})
	t.Run("After the annotation the Tenant is deleted, and gyre's removal deletes its namespaces.", func(t *testing.T) {
		g := NewWithT(t)
		lift(g, tenant)
		g.Expect(admin.Delete(ctx, tenant)).To(Succeed())
		// What the tenant reconciler does for a deleted Tenant.
		g.Expect(tenants.Remove(ctx, cs, tenant)).To(Succeed())
		for _, name := range namespaces {
			ns := &corev1.Namespace{}
			err := admin.Get(ctx, client.ObjectKey{Name: name}, ns)
			if err == nil {
				g.Expect(ns.DeletionTimestamp).NotTo(BeNil(), "namespace %s is not being deleted", name)
			} else {
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)
			}
		}
	})
}
