package reconciler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
)

// statusWrites counts the writes of each Tenant's status in writes.
func statusWrites(writes []string) map[string]int {
	n := map[string]int{}
	for _, w := range writes {
		path, ok := strings.CutSuffix(w, "/status")
		if !ok || !strings.Contains(path, "/tenants/") {
			continue
		}
		n[path[strings.LastIndex(path, "/")+1:]]++
	}
	return n
}

func TestTenantStatusWrites(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	const tenantCount = 6
	dir := t.TempDir()
	benchRepo(t, dir, "writes", tenantCount)
	repo := &gyrev1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{GenerateName: "writes-"}, Spec: gyrev1alpha1.RepositorySpec{URL: "https://example.invalid/x.git", Suspend: true}}
	g.Expect(testEnv.Client.Create(ctx, repo)).To(Succeed())
	deleteAtCleanup(t, repo)
	setRevision := func(g Gomega, n int) string {
		r := &gyrev1alpha1.Repository{}
		g.Expect(testEnv.Client.Get(ctx, client.ObjectKeyFromObject(repo), r)).To(Succeed())
		r.Status.Artifact = &gyrev1alpha1.Artifact{Revision: fmt.Sprintf("main@sha1:%040d", n)}
		g.Expect(testEnv.Client.Status().Update(ctx, r)).To(Succeed())
		return r.Status.Artifact.Revision
	}
	rev := setRevision(g, 1)
	writes := &writeCounter{}
	_, stop := startBenchController(g, dir, writes, clock.RealClock{})
	defer func() { stop() }()
	names := make([]string, tenantCount)
	for i := range tenantCount {
		names[i] = fmt.Sprintf("writes%d", i)
		tn := &gyrev1alpha1.Tenant{
			ObjectMeta: metav1.ObjectMeta{Name: names[i]},
			Spec: gyrev1alpha1.TenantSpec{
				RepositoryRef: gyrev1alpha1.ObjectReference{Name: repo.Name},
				Clusters:      []gyrev1alpha1.TenantCluster{{Name: "one"}, {Name: "two"}},
				Interval:      &metav1.Duration{Duration: time.Hour},
			},
		}
		g.Expect(testEnv.Client.Create(ctx, tn)).To(Succeed())
		t.Cleanup(func() { _ = client.IgnoreNotFound(testEnv.Client.Delete(context.Background(), tn)) })
	}
	applied := func(g *WithT, rev string) {
		for _, name := range names {
			expectApplied(g, name, rev)
			g.Expect(getTenant(g, name).Status.Objects).To(Equal(40))
		}
		settle(&tenantFixture{t: t, writes: writes})
	}

	t.Run("A new Tenant's first convergence writes its status once, Ready with both inventories.", func(t *testing.T) {
		g := NewWithT(t)
		applied(g, rev)
		want := map[string]int{}
		for _, name := range names {
			want[name] = 1
		}
		g.Expect(statusWrites(writes.take())).To(Equal(want))
	})

	t.Run("A new Tenant's first convergence lists nothing in the namespaces it made.", func(t *testing.T) {
		// Nobody else's objects were in them when provisioning found
		// them missing: the adoption check asks nothing of them.
		// The controller also reconciles what other tests left.
		var ours []string
		for _, path := range writes.takeListings() {
			if strings.Contains(path, "/namespaces/cyclone-writes") {
				ours = append(ours, path)
			}
		}
		NewWithT(t).Expect(ours).To(BeEmpty())
	})

	t.Run("A new revision shows Applying on the Tenant before it is Ready again: two status writes.", func(t *testing.T) {
		g := NewWithT(t)
		wc, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testEnv.Scheme})
		g.Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &gyrev1alpha1.TenantList{})
		g.Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		rev := setRevision(g, 2)
		applied(g, rev)
		want := map[string]int{}
		for _, name := range names {
			want[name] = 2
		}
		g.Expect(statusWrites(writes.take())).To(Equal(want))
		progressing := map[string]bool{}
		for len(progressing) < tenantCount {
			var ev watch.Event
			g.Eventually(w.ResultChan()).Should(Receive(&ev))
			tn, ok := ev.Object.(*gyrev1alpha1.Tenant)
			if !ok || !strings.HasPrefix(tn.Name, "writes") {
				continue
			}
			if c := apimeta.FindStatusCondition(tn.Status.Conditions, meta.ReconcilingCondition); c != nil && c.Message == "Applying revision "+rev {
				progressing[tn.Name] = true
			}
		}
	})

	t.Run("A restarted controller lists nothing for the objects its Tenants applied.", func(t *testing.T) {
		// They are in the metadata cache with the tenant's label, so
		// none carries the legacy labels alone: neither the check of
		// every Tenant at start nor the next revision's apply asks the
		// API server about them.
		g := NewWithT(t)
		stop()
		writes.takeListings()
		_, stop = startBenchController(g, dir, writes, clock.RealClock{})
		applied(g, setRevision(g, 3))
		var ours []string
		for _, path := range writes.takeListings() {
			if strings.Contains(path, "/namespaces/cyclone-writes") {
				ours = append(ours, path)
			}
		}
		g.Expect(ours).To(BeEmpty())
	})
}
