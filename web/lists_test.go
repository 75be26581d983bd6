package web

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

// createTenant creates a Tenant of two targets and writes its status as
// the tenant reconciler would (none runs here).
func createTenant(t *testing.T, g Gomega, name string, ready bool, message string) {
	t.Helper()
	tn := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       gyrev1alpha1.TenantSpec{RepositoryRef: gyrev1alpha1.ObjectReference{Name: "pipelines"}},
	}
	g.Expect(k8s.Create(ctx, tn)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, tn) })
	status, reason := metav1.ConditionTrue, "Succeeded"
	if !ready {
		status, reason = metav1.ConditionFalse, "BuildFailed"
	}
	cond := func() []metav1.Condition {
		return []metav1.Condition{{Type: "Ready", Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(testNow)}}
	}
	entries := func(n int) *gyrev1alpha1.Inventory {
		inv := &gyrev1alpha1.Inventory{}
		for i := range n {
			inv.Entries = append(inv.Entries, gyrev1alpha1.InventoryEntry{ID: "cyclone-" + name + "_s" + string(rune('a'+i)) + "_cyclone.dev_Stage", Version: "v1alpha1"})
		}
		return inv
	}
	tn.Status = gyrev1alpha1.TenantStatus{
		Conditions: cond(), LastAppliedRevision: "main@sha1:3f2a9c1", Objects: 5,
		Targets: []gyrev1alpha1.TargetStatus{
			{Cluster: "prod", LastAppliedRevision: "main@sha1:3f2a9c1", Inventory: entries(2), Conditions: cond()},
			{Cluster: "staging", LastAppliedRevision: "main@sha1:3f2a9c1", Inventory: entries(3), Conditions: cond()},
		},
	}
	g.Expect(k8s.Status().Update(ctx, tn)).To(Succeed())
}

func TestBrowser_tenantsAndRepositories(t *testing.T) {
	tab := browser(t)
	g := NewWithT(t)
	createTenant(t, g, "lists-ok", true, "Applied revision main@sha1:3f2a9c1")
	createTenant(t, g, "lists-broken", false, "tenants/lists-broken/prod/kustomization.yaml: missing resource stage.yaml")
	repo := &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{Name: "lists-pipelines"},
		Spec:       gyrev1alpha1.RepositorySpec{URL: "https://git.example/platform/pipelines.git", Ref: &gyrev1alpha1.GitRef{Branch: "main"}},
	}
	g.Expect(k8s.Create(ctx, repo)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, repo) })
	repo.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Succeeded", LastTransitionTime: metav1.NewTime(testNow)}}
	repo.Status.Artifact = &gyrev1alpha1.Artifact{Revision: "main@sha1:3f2a9c1", LastUpdateTime: metav1.NewTime(testNow.Add(-90 * time.Second))}
	g.Expect(k8s.Status().Update(ctx, repo)).To(Succeed())

	local := serve(t, Options{TrustLocal: true})
	g.Expect(open(g, tab, local+"/tenants")).To(BeEquivalentTo(200))
	row := func(sel string) []string {
		return eval[[]string](g, tab, `[...document.querySelectorAll('`+sel+` td')].map(td => td.textContent.trim())`)
	}
	g.Expect(row(`tr[data-tenant="lists-broken"]`)).To(Equal([]string{
		"lists-broken", "False", "main@sha1:3f2a9c1", "prod (2) staging (3)", "5",
		"tenants/lists-broken/prod/kustomization.yaml: missing resource stage.yaml",
	}), "Ready, revision, targets with their object counts, and the last error")
	g.Expect(row(`tr[data-tenant="lists-ok"]`)).To(HaveExactElements("lists-ok", "True", "main@sha1:3f2a9c1", "prod (2) staging (3)", "5", ""))

	g.Expect(open(g, tab, local+"/repositories")).To(BeEquivalentTo(200))
	g.Expect(row(`tr[data-repository="lists-pipelines"]`)).To(Equal([]string{
		"lists-pipelines", "https://git.example/platform/pipelines.git", "branch main", "main@sha1:3f2a9c1", "True", "1m30s ago",
	}))

	// A user who may get one Tenant by name sees that one only, and no
	// Repository.
	ns := tenantNamespace(t, g, "lists-user")
	token := serviceAccountToken(g, ns, "viewer")
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "lists-viewer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"gyre.dev"}, Resources: []string{"tenants"}, ResourceNames: []string{"lists-ok"}, Verbs: []string{"get"}}},
	}
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, role) })
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lists-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: ns}},
	}
	g.Expect(k8s.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(ctx, binding) })

	guarded := serve(t, Options{})
	login(g, tab, guarded, token)
	g.Expect(open(g, tab, guarded+"/tenants")).To(BeEquivalentTo(200))
	g.Expect(eval[[]string](g, tab, `[...document.querySelectorAll("#tenants tr[data-tenant]")].map(r => r.dataset.tenant)`)).
		To(Equal([]string{"lists-ok"}))
	g.Expect(open(g, tab, guarded+"/repositories")).To(BeEquivalentTo(200))
	g.Expect(eval[string](g, tab, `document.querySelector("#repositories tbody").textContent.trim()`)).To(Equal("No Repository you may read."))
}
