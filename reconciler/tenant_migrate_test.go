package reconciler

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/source"
)

func TestTenantReconciler_relabelsObjectsAppliedWithTheLegacyLabels(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	const name = "legacy-labels"
	ns := convention.Namespace(name)
	root := t.TempDir()
	f := &tenantFixture{t: t, repo: gitserver.NewRepo(t, root, "legacy.git"), git: &source.Git{CacheDir: t.TempDir()}, writes: &writeCounter{}}
	var err error
	f.srv, err = gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(f.srv.Close)
	f.repo.WriteFile("tenants/"+name+"/kustomization.yaml", "resources:\n- stages.yaml\n- settings.yaml\n")
	f.repo.WriteFile("tenants/"+name+"/stages.yaml", buildStage("golang:1.27"))
	f.repo.WriteFile("tenants/"+name+"/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  team: from-git\n")
	f.repoObj = &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "legacy-"},
		Spec:       gyrev1alpha1.RepositorySpec{URL: f.srv.URL + "/legacy.git", Interval: &metav1.Duration{Duration: time.Hour}, Suspend: true},
	}
	g.Expect(testEnv.Client.Create(ctx, f.repoObj)).To(Succeed())
	deleteAtCleanup(t, f.repoObj)
	rev := f.publish(g, "a stage and a config map")

	// What an earlier gyre left: the tenant's namespace, and ConfigMaps it
	// applied with the legacy label pair only. "retired" has left Git.
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{convention.TenantLabel: name, convention.ManagedByLabel: convention.ManagedBy}}}
	g.Expect(testEnv.Client.Create(ctx, nsObj)).To(Succeed())
	deleteAtCleanup(t, nsObj)
	for _, cm := range []string{"settings", "retired"} {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": cm, "namespace": ns, "labels": map[string]any{
				convention.LegacyTenantLabel: name, convention.LegacyTargetLabel: "one"}},
			"data": map[string]any{"team": "applied-before"},
		}}
		g.Expect(testEnv.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(convention.FieldManager), client.ForceOwnership)).To(Succeed())
	}
	tn := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gyrev1alpha1.TenantSpec{
			RepositoryRef: gyrev1alpha1.ObjectReference{Name: f.repoObj.Name},
			Clusters:      []gyrev1alpha1.TenantCluster{{Name: "one"}},
			Interval:      &metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(testEnv.Client.Create(ctx, tn)).To(Succeed())
	deleteAtCleanup(t, tn)
	tn.Status.Targets = []gyrev1alpha1.TargetStatus{{Cluster: "one", Inventory: &gyrev1alpha1.Inventory{Entries: []gyrev1alpha1.InventoryEntry{
		{ID: inventoryID(ns, "build", "cyclone.dev", "Stage"), Version: "v1alpha1"},
		{ID: inventoryID(ns, "retired", "", "ConfigMap"), Version: "v1"},
		{ID: inventoryID(ns, "settings", "", "ConfigMap"), Version: "v1"},
	}}}}
	g.Expect(testEnv.Client.Status().Update(ctx, tn)).To(Succeed())
	f.start(g)

	// Neither refused as someone else's nor applied twice: the object
	// is relabelled and updated in place.
	expectApplied(g, name, rev)
	settings := &corev1.ConfigMap{}
	g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "settings"}, settings)).To(Succeed())
	g.Expect(settings.Data).To(HaveKeyWithValue("team", "from-git"))
	g.Expect(settings.Labels).To(HaveKeyWithValue(convention.TenantLabel, name))
	g.Expect(settings.Labels).To(HaveKeyWithValue(convention.TargetLabel, "one"))
	g.Expect(settings.Labels).NotTo(HaveKey(convention.LegacyTenantLabel))
	g.Expect(settings.Labels).NotTo(HaveKey(convention.LegacyTargetLabel))
	var all corev1.ConfigMapList
	g.Expect(testEnv.Client.List(ctx, &all, client.InNamespace(ns), client.MatchingLabels{convention.TenantLabel: name})).To(Succeed())
	g.Expect(all.Items).To(HaveLen(1), "one ConfigMap of the tenant is left: settings")

	// The object that left Git is pruned, though it carried the legacy
	// labels when the reconciler first saw it.
	g.Eventually(func(g Gomega) {
		err := testEnv.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "retired"}, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "retired is still there: %v", err)
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}
