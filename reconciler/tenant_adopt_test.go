package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/source"
)

func TestTenantReconciler_adoptsOnlyObjectsAnnotatedForIt(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	root := t.TempDir()
	f := &tenantFixture{t: t, repo: gitserver.NewRepo(t, root, "adopt.git"), git: &source.Git{CacheDir: t.TempDir()}, writes: &writeCounter{}}
	var err error
	f.srv, err = gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(f.srv.Close)
	for _, tenant := range []string{"adopt-refused", "adopt-allowed"} {
		f.repo.WriteFile("tenants/"+tenant+"/kustomization.yaml", "resources:\n- stages.yaml\n- settings.yaml\n")
		f.repo.WriteFile("tenants/"+tenant+"/stages.yaml", buildStage("golang:1.27"))
		f.repo.WriteFile("tenants/"+tenant+"/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  team: from-git\n")
	}
	f.repoObj = &gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "adopt-"},
		Spec:       gyrev1alpha1.RepositorySpec{URL: f.srv.URL + "/adopt.git", Interval: &metav1.Duration{Duration: time.Hour}, Suspend: true},
	}
	g.Expect(testEnv.Client.Create(ctx, f.repoObj)).To(Succeed())
	deleteAtCleanup(t, f.repoObj)
	rev := f.publish(g, "a stage and a config map per tenant")
	f.start(g)

	// someoneElses makes the tenant's namespace and, in it, a ConfigMap
	// that gyre did not create, with the given annotations. The namespace
	// itself may be adopted: only the object is in question here.
	someoneElses := func(g *WithT, tenant string, annotations map[string]string) *corev1.ConfigMap {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: convention.Namespace(tenant),
			Annotations: map[string]string{gyrev1alpha1.AdoptAnnotation: "true"}}}
		g.Expect(testEnv.Client.Create(ctx, ns)).To(Succeed())
		deleteAtCleanup(t, ns)
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns.Name, Annotations: annotations},
			Data:       map[string]string{"team": "by-hand"},
		}
		g.Expect(testEnv.Client.Create(ctx, cm)).To(Succeed())
		return cm
	}
	createTenant := func(g *WithT, name string) {
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
	}
	getConfigMap := func(g Gomega, tenant string) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{}
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKey{Namespace: convention.Namespace(tenant), Name: "settings"}, cm)).To(Succeed())
		return cm
	}

	t.Run("An object someone else made is not taken over, and nothing of its target is applied, until it is annotated.", func(t *testing.T) {
		g := NewWithT(t)
		name := "adopt-refused"
		someoneElses(g, name, nil)
		createTenant(g, name)
		want := `ConfigMap/cyclone-adopt-refused/settings already exists and was not created by gyre; annotate it gyre.dev/adopt: "true" to let gyre adopt it`
		g.Eventually(func(g Gomega) {
			st := targetStatus(getTenant(g, name), "one")
			g.Expect(st).NotTo(BeNil())
			ready := apimeta.FindStatusCondition(st.Conditions, meta.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Message).To(ContainSubstring(want))
		}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		cm := getConfigMap(g, name)
		g.Expect(cm.Data).To(HaveKeyWithValue("team", "by-hand"))
		g.Expect(cm.Labels).NotTo(HaveKey(convention.TenantLabel))
		g.Expect(cm.ManagedFields).NotTo(ContainElement(HaveField("Manager", convention.FieldManager)))
		_, err := getStage(g, name, "build")
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the target's Stage was applied: %v", err)

		// The annotation lets the retry adopt it.
		cm.Annotations = map[string]string{gyrev1alpha1.AdoptAnnotation: "true"}
		g.Expect(testEnv.Client.Update(ctx, cm)).To(Succeed())
		expectApplied(g, name, rev)
		g.Expect(getConfigMap(g, name).Data).To(HaveKeyWithValue("team", "from-git"))
	})

	t.Run("An object annotated for adoption is taken over with the rest of its target.", func(t *testing.T) {
		g := NewWithT(t)
		name := "adopt-allowed"
		someoneElses(g, name, map[string]string{gyrev1alpha1.AdoptAnnotation: "true"})
		createTenant(g, name)
		expectApplied(g, name, rev)
		cm := getConfigMap(g, name)
		g.Expect(cm.Data).To(HaveKeyWithValue("team", "from-git"))
		g.Expect(cm.Labels).To(HaveKeyWithValue(convention.TenantLabel, name))
		_, err := getStage(g, name, "build")
		g.Expect(err).NotTo(HaveOccurred())
	})
}
