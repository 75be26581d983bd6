package reconciler

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

// TestTenantReconciler_provisionedCheck: once a Tenant on the control
// cluster is provisioned, a check finds its namespaces, PVC and RBAC
// current from the cache alone, yet still puts back what was changed
// and removes what the Tenant no longer grants.
func TestTenantReconciler_provisionedCheck(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	f := newTenantFixture(t, g)
	rev := f.publish(g, "initial")
	f.start(g)
	f.createControlTenant(g, "delta")
	expectApplied(g, "delta", rev)
	worker := convention.WorkerNamespace("delta")
	account := client.ObjectKey{Namespace: worker, Name: convention.WorkerServiceAccount}

	t.Run("A requested check of the provisioned tenant writes only its status.", func(t *testing.T) {
		g := NewWithT(t)
		settle(f)
		f.writes.take()
		requestTenant(g, "delta")
		settle(f)
		var writes []string
		for _, w := range withoutLeases(f.writes.take()) {
			if !strings.HasSuffix(w, "/tenants/delta/status") {
				writes = append(writes, w)
			}
		}
		g.Expect(writes).To(BeEmpty())
	})

	t.Run("A deleted worker ServiceAccount and a relabelled worker namespace are put back at once.", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(testEnv.Client.Delete(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: account.Namespace, Name: account.Name}})).To(Succeed())
		ns := &corev1.Namespace{}
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Name: worker}, ns)).To(Succeed())
		ns.Labels["pod-security.kubernetes.io/enforce"] = "privileged" // as kubectl label would
		g.Expect(testEnv.Client.Update(ctx, ns, client.FieldOwner("kubectl-label"))).To(Succeed())
		eventually(g, func(g Gomega) {
			g.Expect(testEnv.Client.Get(ctx, account, &corev1.ServiceAccount{})).To(Succeed())
			g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Name: worker}, ns)).To(Succeed())
			g.Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "baseline"))
		})
	})

	t.Run("A full check removes a worker Role the Tenant does not grant, which its creation did not announce.", func(t *testing.T) {
		g := NewWithT(t)
		// As an earlier spec with worker access would have left it.
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: worker, Name: convention.WorkerServiceAccount, Labels: map[string]string{
				convention.ManagedByLabel: convention.ManagedBy, convention.TenantLabel: "delta",
			}},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
		}
		g.Expect(testEnv.Client.Create(ctx, role)).To(Succeed())
		deleteAtCleanup(t, role)
		// Asked again until it is gone: a check that ran before the
		// reconciler's cache saw the Role could not know of it.
		g.Eventually(func(g Gomega) {
			requestTenant(NewWithT(t), "delta")
			err := testEnv.Client.Get(ctx, client.ObjectKeyFromObject(role), &rbacv1.Role{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Role is still there: %v", err)
		}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
	})
}
