package render

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/fsutil"
)

// writeRepo writes files (path → content) under a new directory and
// returns it.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	for p, content := range files {
		writeFile(t, filepath.Join(root, p), content)
	}
	return root
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := fsutil.WriteFile(p, []byte(content)); err != nil {
		t.Fatal(err)
	}
}

// outcome is what a user sees of a render: its YAML, or its errors.
func outcome(t *testing.T, res *Result) string {
	t.Helper()
	if len(res.Errors) > 0 {
		return string(errorLines(res))
	}
	return string(renderYAML(t, res))
}

const stageYAML = `apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: test
spec:
  pod:
    spec:
      containers:
      - name: main
        image: golang:1.27
        command: [go, test, ./...]
        envFrom:
        - configMapRef:
            name: settings
`

// plainStage is stageYAML without the reference to a ConfigMap, which
// an overlay's name suffix would change: its overlays' copies differ only
// in metadata.
var plainStage = strings.Replace(stageYAML, "        envFrom:\n        - configMapRef:\n            name: settings\n", "", 1)

func TestRenderer_checksASharedBaseOncePerRevision(t *testing.T) {
	overlays := func(extra string) map[string]string {
		return map[string]string{
			"tenants/t/one/kustomization.yaml": "resources:\n- ../base\nnameSuffix: -one\n" + extra,
			"tenants/t/two/kustomization.yaml": "resources:\n- ../base\nnameSuffix: -two\n" + extra,
		}
	}
	with := func(m map[string]string, files map[string]string) map[string]string {
		for k, v := range files {
			m[k] = v
		}
		return m
	}
	targets := []Target{{Tenant: "t", Cluster: "one"}, {Tenant: "t", Cluster: "two"}}
	cases := []struct {
		name    string
		files   map[string]string
		targets []Target
		// fails names, for each target that fails, the file of its
		// first error.
		fails map[string]string
		// shared says that overlays render an object that differs only
		// in metadata, whose validation is shared.
		shared bool
	}{{
		name: "overlays merge their own literals into a ConfigMap the base generates, and the Stage follows each hashed name",
		files: with(overlays("configMapGenerator:\n- name: settings\n  behavior: merge\n  literals:\n  - CLUSTER=x\n"), map[string]string{
			"tenants/t/base/stage.yaml":         stageYAML,
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - GOFLAGS=-mod=readonly\n",
		}),
		targets: targets,
	}, {
		name: "overlays patch an object of their base differently",
		files: map[string]string{
			"tenants/t/base/stage.yaml":         stageYAML,
			"tenants/t/base/settings.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  A: b\n",
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\n- settings.yaml\n",
			"tenants/t/one/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -one\npatches:\n- target: {kind: Stage, name: test}\n  patch: |-\n    - op: replace\n      path: /spec/pod/spec/containers/0/image\n      value: golang:1.26\n",
			"tenants/t/two/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -two\n",
		},
		targets: targets,
	}, {
		name: "overlays share a component",
		files: with(overlays("components:\n- ../../../components/lint\n"), map[string]string{
			"tenants/t/base/stage.yaml":          stageYAML,
			"tenants/t/base/kustomization.yaml":  "resources:\n- stage.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - A=b\n",
			"components/lint/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- lint.yaml\nlabels:\n- pairs:\n    lint: \"on\"\n",
			"components/lint/lint.yaml":          strings.ReplaceAll(stageYAML, "name: test", "name: lint"),
		}),
		targets: targets,
	}, {
		name: "bases nest two levels deep and two tenants share the repository's base",
		files: map[string]string{
			"base/stage.yaml":                      stageYAML,
			"base/settings.yaml":                   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  A: b\n",
			"base/kustomization.yaml":              "resources:\n- stage.yaml\n- settings.yaml\n",
			"tenants/a/base/kustomization.yaml":    "resources:\n- ../../../base\nnamePrefix: a-\n",
			"tenants/a/one/kustomization.yaml":     "resources:\n- ../base\nnameSuffix: -one\n",
			"tenants/a/two/kustomization.yaml":     "resources:\n- ../base\nnameSuffix: -two\n",
			"tenants/b/base/kustomization.yaml":    "resources:\n- ../../../base\nlabels:\n- pairs:\n    team: b\n",
			"tenants/b/default/kustomization.yaml": "resources:\n- ../base\n",
		},
		targets: []Target{{Tenant: "a", Cluster: "one"}, {Tenant: "a", Cluster: "two"}, {Tenant: "b", Cluster: DefaultCluster}},
	}, {
		name: "a base lists Cyclone's YAML list templates and a ConfigMap's data file that is a list",
		files: with(overlays("configMapGenerator:\n- name: data\n  files:\n  - ../base/list.yaml\n"), map[string]string{
			"tenants/t/base/list.yaml":          "- " + strings.ReplaceAll(strings.TrimSuffix(stageYAML, "\n"), "\n", "\n  ") + "\n",
			"tenants/t/base/settings.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  A: b\n",
			"tenants/t/base/kustomization.yaml": "resources:\n- list.yaml\n- settings.yaml\n",
		}),
		targets: targets,
	}, {
		name: "a base file with duplicate keys is refused for every overlay",
		files: with(overlays(""), map[string]string{
			"tenants/t/base/stage.yaml":         strings.Replace(stageYAML, "  name: test\n", "  name: test\n  name: again\n", 1),
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\n",
		}),
		targets: targets,
		fails:   map[string]string{"t/one": "tenants/t/base/stage.yaml", "t/two": "tenants/t/base/stage.yaml"},
	}, {
		name: "a base's Stage with an unknown field is reported for each overlay's copy",
		files: with(overlays(""), map[string]string{
			"tenants/t/base/stage.yaml":         strings.Replace(plainStage, "        image:", "        imag: typo\n        image:", 1),
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\n",
		}),
		targets: targets,
		fails:   map[string]string{"t/one": "tenants/t/base/stage.yaml", "t/two": "tenants/t/base/stage.yaml"},
		shared:  true,
	}, {
		name: "a base's Stage that breaks a CEL rule is reported for each overlay's copy",
		files: with(overlays(""), map[string]string{
			"tenants/t/base/stage.yaml":         "apiVersion: cyclone.dev/v1alpha1\nkind: Stage\nmetadata:\n  name: test\nspec: {}\n",
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\n",
		}),
		targets: targets,
		fails:   map[string]string{"t/one": "tenants/t/base/stage.yaml", "t/two": "tenants/t/base/stage.yaml"},
	}, {
		name: "an overlay that gives the base's Stage an invalid label fails alone",
		files: with(map[string]string{
			"tenants/t/one/kustomization.yaml": "resources:\n- ../base\nnameSuffix: -one\nlabels:\n- pairs:\n    owner: -one-\n",
			"tenants/t/two/kustomization.yaml": "resources:\n- ../base\nnameSuffix: -two\n",
		}, map[string]string{
			"tenants/t/base/stage.yaml":         plainStage,
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\n",
		}),
		targets: targets,
		fails:   map[string]string{"t/one": "tenants/t/base/stage.yaml"},
		shared:  true,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			root := writeRepo(t, tc.files)
			ctx := context.Background()
			opts := Options{Revision: "main@sha1:1"}

			want := map[string]string{}
			uncached := &Renderer{}
			for _, target := range tc.targets {
				res, err := uncached.Render(ctx, root, target, opts)
				g.Expect(err).NotTo(HaveOccurred())
				if file, ok := tc.fails[target.String()]; ok {
					g.Expect(res.Errors).NotTo(BeEmpty())
					g.Expect(res.Errors[0].File).To(Equal(file))
				} else {
					g.Expect(res.Errors).To(BeEmpty())
				}
				want[target.String()] = outcome(t, res)
			}

			// Every target in turn, sharing one Renderer whose target
			// cache is kept out of the way: each file is checked once.
			r := NewRenderer()
			r.cache = nil
			for _, target := range tc.targets {
				res, err := r.Render(ctx, root, target, opts)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(outcome(t, res)).To(Equal(want[target.String()]), "%s renders as without the cache", target)
			}
			yamlFiles := 0
			for p := range tc.files {
				if isYAML(p) {
					yamlFiles++
				}
			}
			g.Expect(r.checks.Load()).To(BeNumerically("<=", yamlFiles), "each file is checked once, whichever targets read it")
			g.Expect(uncached.checks.Load()).To(BeNumerically(">", r.checks.Load()))
			if tc.shared {
				g.Expect(r.files.validationHits.Load()).To(BeNumerically(">", 0), "the base's Stage is validated once for both overlays")
			}

			// Every target twice at once, from a cold cache.
			r = NewRenderer()
			r.cache = nil
			var mu sync.Mutex
			got := map[string][]string{}
			var wg sync.WaitGroup
			for range 2 {
				for _, target := range tc.targets {
					wg.Go(func() {
						res, err := r.Render(ctx, root, target, opts)
						g.Expect(err).NotTo(HaveOccurred())
						mu.Lock()
						got[target.String()] = append(got[target.String()], outcome(t, res))
						mu.Unlock()
					})
				}
			}
			wg.Wait()
			for _, target := range tc.targets {
				g.Expect(got[target.String()]).To(HaveEach(want[target.String()]), "%s renders as without the cache", target)
			}
		})
	}
}

func TestRenderer_fileCacheNeverServesOtherContent(t *testing.T) {
	base := func(image string) string { return strings.ReplaceAll(stageYAML, "golang:1.27", image) }
	cases := []struct {
		name string
		// change runs between the two renders of target.
		change   func(t *testing.T, root string)
		first    Options
		second   Options
		target   Target
		image    string // the second render's Stage image
		checks   int64  // files checked by both renders
		newFiles map[string]string
	}{{
		name: "a base changed by a new revision renders the new content",
		change: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "tenants/a/base/stage.yaml"), base("golang:1.28"))
		},
		first: Options{Revision: "r1"}, second: Options{Revision: "r2"},
		target: Target{Tenant: "a", Cluster: "one"}, image: "golang:1.28",
		checks: 3 + 3, // a new revision checks every file again
	}, {
		name: "a base changed in place under the same revision renders the new content",
		change: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "tenants/a/base/stage.yaml"), base("golang:1.28"))
		},
		first: Options{Revision: "r1"}, second: Options{Revision: "r1"},
		target: Target{Tenant: "a", Cluster: "one"}, image: "golang:1.28",
		checks: 3 + 1,
	}, {
		name:   "another tenant's base at the same relative path is its own",
		change: func(*testing.T, string) {},
		first:  Options{Revision: "r1"}, second: Options{Revision: "r1"},
		target: Target{Tenant: "b", Cluster: "one"}, image: "golang:1.25",
		checks: 3 + 3,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			root := writeRepo(t, map[string]string{
				"tenants/a/base/stage.yaml":         base("golang:1.27"),
				"tenants/a/base/kustomization.yaml": "resources:\n- stage.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - A=b\n",
				"tenants/a/one/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -one\n",
				"tenants/a/two/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -two\n",
				"tenants/b/base/stage.yaml":         base("golang:1.25"),
				"tenants/b/base/kustomization.yaml": "resources:\n- stage.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - A=b\n",
				"tenants/b/one/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -one\n",
			})
			r := NewRenderer()
			r.cache = nil
			ctx := context.Background()
			res, err := r.Render(ctx, root, Target{Tenant: "a", Cluster: "one"}, tc.first)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).To(BeEmpty())
			tc.change(t, root)
			res, err = r.Render(ctx, root, tc.target, tc.second)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).To(BeEmpty())
			var images []string
			for _, o := range res.Objects {
				if o.GetKind() == "Stage" {
					cs, _, _ := unstructuredSlice(o.Object, "spec", "pod", "spec", "containers")
					images = append(images, cs[0].(map[string]any)["image"].(string))
				}
			}
			g.Expect(images).To(Equal([]string{tc.image}))
			g.Expect(r.checks.Load()).To(Equal(tc.checks))
		})
	}
}

func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	var v any = obj
	for _, f := range fields {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		v = m[f]
	}
	s, ok := v.([]any)
	return s, ok, nil
}

func TestFileCache_holdsAtMostItsSize(t *testing.T) {
	g := NewWithT(t)
	c := newFileCache(1000)
	sum := [32]byte{1}
	// Each entry costs 299 bytes: its 21-byte path, its 150 bytes out and
	// 128 bytes of bookkeeping; three fit.
	entry := func() *checkedFile { return &checkedFile{sum: sum, out: make([]byte, 150)} }

	one := c.forRoot("/artifacts/one", "r1")
	one.store(fileKey{path: "/artifacts/one/a.yaml"}, entry())
	one.store(fileKey{path: "/artifacts/one/b.yaml"}, entry())
	g.Expect(one.lookup(fileKey{path: "/artifacts/one/a.yaml"}, sum)).NotTo(BeNil())
	g.Expect(one.lookup(fileKey{path: "/artifacts/one/a.yaml"}, [32]byte{2})).To(BeNil(), "other bytes at the same path")
	g.Expect(one.lookup(fileKey{path: "/artifacts/one/a.yaml", resource: true}, sum)).To(BeNil(), "the same bytes read as a resource")

	// A second root fills the cache: the least recently used root goes.
	two := c.forRoot("/artifacts/two", "r1")
	for _, name := range []string{"a", "b", "c"} {
		two.store(fileKey{path: "/artifacts/two/" + name + ".yaml"}, entry())
	}
	g.Expect(c.held()).To(BeNumerically("<=", 1000))
	g.Expect(two.lookup(fileKey{path: "/artifacts/two/c.yaml"}, sum)).NotTo(BeNil())
	g.Expect(c.forRoot("/artifacts/one", "r1").lookup(fileKey{path: "/artifacts/one/a.yaml"}, sum)).To(BeNil())

	// A new revision of a root drops the old one's entries.
	g.Expect(c.forRoot("/artifacts/two", "r2").lookup(fileKey{path: "/artifacts/two/c.yaml"}, sum)).To(BeNil())
	g.Expect(c.held()).To(BeZero())

	// One root never holds more than the cache's size.
	three := c.forRoot("/artifacts/three", "r1")
	var stored []string
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		three.store(fileKey{path: "/artifacts/three/" + name + ".yaml"}, entry())
		if three.lookup(fileKey{path: "/artifacts/three/" + name + ".yaml"}, sum) != nil {
			stored = append(stored, name)
		}
	}
	sort.Strings(stored)
	g.Expect(stored).To(Equal([]string{"a", "b", "c"}))
	g.Expect(c.held()).To(BeNumerically("<=", 1000))
}

func TestSchemas_shareValidationOnlyWhenMetadataCannotMatter(t *testing.T) {
	schemas, err := DefaultSchemas()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		kind   string
		shared bool
	}{
		{"a Stage's schema asks of metadata only that it be an object", "Stage", true},
		{"a Tenant's schema has rules at its root, which may read metadata", "Tenant", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			found := false
			for gvk, vs := range schemas.versions {
				if gvk.Kind == tc.kind {
					found = true
					g.Expect(vs.apartFromMetadata).To(Equal(tc.shared))
				}
			}
			g.Expect(found).To(BeTrue())
		})
	}
}

func TestRenderer_sharesValidationWithinATenantOnly(t *testing.T) {
	g := NewWithT(t)
	root := writeRepo(t, map[string]string{
		"tenants/a/base/stage.yaml":         plainStage,
		"tenants/a/base/kustomization.yaml": "resources:\n- stage.yaml\n",
		"tenants/a/one/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -one\n",
		"tenants/a/two/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -two\n",
		"tenants/b/base/stage.yaml":         plainStage,
		"tenants/b/base/kustomization.yaml": "resources:\n- stage.yaml\n",
		"tenants/b/one/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -one\n",
	})
	r := NewRenderer()
	render := func(tenant, cluster string) {
		res, err := r.Render(context.Background(), root, Target{Tenant: tenant, Cluster: cluster}, Options{Revision: "r1"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Errors).To(BeEmpty())
	}
	render("a", "one")
	render("b", "one")
	g.Expect(r.files.validationHits.Load()).To(BeZero(), "tenant b's Stage, byte for byte a's, is validated for b")
	render("a", "two")
	g.Expect(r.files.validationHits.Load()).To(BeEquivalentTo(1), "a's second overlay shares its first one's")
}

// TestRenderer_cachedRendersMatchUncachedOnes renders every target of
// the repositories in testdata, whose golden files the other tests
// check, twice through one Renderer whose caches are warm from the
// targets before: each must render as without the caches, to the byte.
func TestRenderer_cachedRendersMatchUncachedOnes(t *testing.T) {
	var roots []string
	for _, pattern := range []string{"../testdata/repos/*", "testdata/*", "testdata/*/*"} {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			// The hostile cases that need a symlink or a big file made
			// by their test are left to it.
			if fi, err := os.Stat(filepath.Join(m, TenantsDir)); err == nil && fi.IsDir() &&
				!strings.Contains(m, "symlink") && !strings.Contains(m, "big-file") {
				roots = append(roots, m)
			}
		}
	}
	if len(roots) < 30 {
		t.Fatalf("found %d repositories in testdata, want at least 30", len(roots))
	}
	for _, root := range roots {
		t.Run(root, func(t *testing.T) {
			g := NewWithT(t)
			targets, err := Discover(root)
			g.Expect(err).NotTo(HaveOccurred())
			opts := Options{Revision: "main@sha1:1"}
			r := NewRenderer()
			r.cache = nil
			for range 2 {
				for _, target := range targets {
					want, err := Render(context.Background(), root, target, opts)
					g.Expect(err).NotTo(HaveOccurred())
					got, err := r.Render(context.Background(), root, target, opts)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(outcome(t, got)).To(Equal(outcome(t, want)), target.String())
					g.Expect(got.Warnings).To(Equal(want.Warnings), target.String())
				}
			}
		})
	}
}
