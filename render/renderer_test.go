package render

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/convention"
)

// copyExample copies the example repository into a temporary directory
// the test may change.
func copyExample(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(root, os.DirFS(exampleRepo)); err != nil {
		t.Fatal(err)
	}
	return root
}

func renderAll(t *testing.T, r *Renderer, root string, opts Options) []*Result {
	t.Helper()
	targets, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	results := make([]*Result, len(targets))
	for i, target := range targets {
		res, err := r.Render(context.Background(), root, target, opts)
		if err != nil {
			t.Fatal(err)
		}
		results[i] = res
	}
	return results
}

func TestRenderer_rebuildsOnlyTargetsWhoseFilesChanged(t *testing.T) {
	g := NewWithT(t)
	root := copyExample(t)
	r := NewRenderer()

	first := renderAll(t, r, root, Options{Revision: "r1"})
	g.Expect(r.builds.Load()).To(BeEquivalentTo(len(first)))

	second := renderAll(t, r, root, Options{Revision: "r2"})
	g.Expect(r.builds.Load()).To(BeEquivalentTo(len(first)), "nothing changed, nothing rebuilt")
	for i := range first {
		g.Expect(second[i].Errors).To(BeEmpty())
		g.Expect(second[i].Objects[0].GetAnnotations()).To(HaveKeyWithValue(convention.RevisionAnnotation, "r2"), "the revision is stamped on cached renders too")
		g.Expect(second[i].Digest).NotTo(Equal(first[i].Digest))
	}

	// Change one tenant's overlay: only that target is rebuilt.
	patch := filepath.Join(root, "tenants/shop/staging/nightly.yaml")
	data, err := os.ReadFile(patch)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(patch, append(data, "    timezone: Europe/Paris\n"...), 0o644)).To(Succeed())
	before := r.builds.Load()
	third := renderAll(t, r, root, Options{Revision: "r2"})
	g.Expect(r.builds.Load() - before).To(BeEquivalentTo(1))
	for i := range third {
		g.Expect(third[i].Errors).To(BeEmpty())
		if third[i].Target.String() == "shop/staging" {
			g.Expect(third[i].Digest).NotTo(Equal(second[i].Digest))
		} else {
			g.Expect(third[i].Digest).To(Equal(second[i].Digest))
		}
	}

	// Change the shared base: every target built on it is rebuilt.
	before = r.builds.Load()
	g.Expect(os.WriteFile(filepath.Join(root, "base/notes.txt"), []byte("not YAML, but in a directory the render read\n"), 0o644)).To(Succeed())
	renderAll(t, r, root, Options{Revision: "r2"})
	g.Expect(r.builds.Load()-before).To(BeEquivalentTo(4), "shop and payments, two clusters each")
}

func TestRenderer_cachedResultsAreIndependentCopies(t *testing.T) {
	g := NewWithT(t)
	r := NewRenderer()
	target := Target{Tenant: "sandbox", Cluster: DefaultCluster}
	a, err := r.Render(context.Background(), exampleRepo, target, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	a.Objects[0].SetName("changed-by-the-caller")
	b, err := r.Render(context.Background(), exampleRepo, target, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.Objects[0].GetName()).NotTo(Equal("changed-by-the-caller"))
	g.Expect(b.Digest).To(Equal(a.Digest))
}

// TestRender_concurrent renders every target of the example from many
// goroutines at once, sharing one Renderer and its caches. Run with
// -race: it is what shows that kustomize builds may run concurrently
// (see kustomizeMu).
func TestRender_concurrent(t *testing.T) {
	g := NewWithT(t)
	targets, err := Discover(exampleRepo)
	g.Expect(err).NotTo(HaveOccurred())
	want := map[string]string{}
	for _, target := range targets {
		res, err := Render(context.Background(), exampleRepo, target, Options{})
		g.Expect(err).NotTo(HaveOccurred())
		want[target.String()] = res.Digest
	}
	r := NewRenderer()
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(targets))
	for range 4 {
		for _, target := range targets {
			wg.Go(func() {
				res, err := r.Render(context.Background(), exampleRepo, target, Options{})
				if err != nil {
					errs <- err
					return
				}
				if res.Digest != want[target.String()] {
					errs <- &Errors{{Message: target.String() + ": digest " + res.Digest + ", want " + want[target.String()]}}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMarkConflicts(t *testing.T) {
	g := NewWithT(t)
	root := copyExample(t)
	// Without its nameSuffix, shop/staging renders the same names as the
	// shop/prod objects that come from the shared base... minus prod's own
	// suffix. Give prod's suffix to staging to make them collide.
	k := filepath.Join(root, "tenants/shop/staging/kustomization.yaml")
	data, err := os.ReadFile(k)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(k, []byte(strings.ReplaceAll(string(data), "nameSuffix: -staging", "nameSuffix: -prod")), 0o644)).To(Succeed())

	results := renderAll(t, NewRenderer(), root, Options{})
	conflicts := MarkConflicts(results)
	g.Expect(conflicts).NotTo(BeEmpty())
	g.Expect(conflicts[0].Targets).To(Equal([]Target{{Tenant: "shop", Cluster: "prod"}, {Tenant: "shop", Cluster: "staging"}}))
	for _, res := range results {
		if res.Target.Tenant == "shop" {
			g.Expect(res.Objects).To(BeEmpty())
			g.Expect(res.Errors).To(ContainElement(HaveField("Message", ContainSubstring("conflict: target shop/"))))
		} else {
			g.Expect(res.Errors).To(BeEmpty())
		}
	}
	var ids []string
	for _, c := range conflicts {
		ids = append(ids, c.ID)
	}
	g.Expect(ids).To(ContainElement("cyclone-shop_ci-prod_cyclone.dev_Workflow"))
}

func TestDiscover(t *testing.T) {
	g := NewWithT(t)
	targets, err := Discover(exampleRepo)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(targets).To(Equal([]Target{
		{Tenant: "analytics", Cluster: "batch"},
		{Tenant: "analytics", Cluster: "gpu"},
		{Tenant: "payments", Cluster: "eu"},
		{Tenant: "payments", Cluster: "us"},
		{Tenant: "sandbox", Cluster: DefaultCluster},
		{Tenant: "shop", Cluster: "prod"},
		{Tenant: "shop", Cluster: "staging"},
	}))
}

func TestTarget_Resolve(t *testing.T) {
	root := copyExample(t)
	for _, tc := range []struct {
		name   string
		target Target
		want   string
	}{
		{"A cluster with an overlay renders the overlay.", Target{Tenant: "shop", Cluster: "prod"}, "tenants/shop/prod"},
		{"A cluster without an overlay renders the tenant base.", Target{Tenant: "shop", Cluster: "qa"}, "tenants/shop/base"},
		{"A tenant without a base renders its directory.", Target{Tenant: "sandbox", Cluster: "any"}, "tenants/sandbox"},
		{"A tenant path moves the search.", Target{Tenant: "x", Cluster: "prod", TenantDir: "tenants/shop"}, "tenants/shop/prod"},
		{"A target path wins over the search.", Target{Tenant: "shop", Cluster: "prod", Path: "tenants/shop/staging"}, "tenants/shop/staging"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := tc.target.Resolve(root)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
	t.Run("A path leaving the repository is refused.", func(t *testing.T) {
		g := NewWithT(t)
		_, err := Target{Tenant: "shop", Cluster: "prod", Path: "../etc"}.Resolve(root)
		g.Expect(err).To(MatchError(ContainSubstring("outside the repository")))
	})
}

// TestDefaultSchemas_coverEveryCRD checks that the built-in schemas know
// every kind gyre installs.
func TestDefaultSchemas_coverEveryCRD(t *testing.T) {
	g := NewWithT(t)
	files, err := filepath.Glob("../config/crd/bases/*.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(files).NotTo(BeEmpty())
	schemas, err := DefaultSchemas()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(schemas.versions).To(HaveLen(len(files)), "one schema per CRD version")
}
