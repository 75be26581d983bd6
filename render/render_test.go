package render

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/convention"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// exampleRepo is the example pipeline repository shared with the CLI.
const exampleRepo = "../testdata/repos/example"

// golden compares got with the file at path, or rewrites the file when
// -update is set.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./render -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the render (go test ./render -update rewrites it):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n- " + wl + "\n+ " + gl
		}
	}
	return ""
}

func renderYAML(t *testing.T, res *Result) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteYAML(&buf, res.Objects); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func errorLines(res *Result) []byte {
	var b strings.Builder
	for _, e := range res.Errors {
		b.WriteString(e.Error())
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func TestRender_example(t *testing.T) {
	targets, err := Discover(exampleRepo)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) < 7 {
		t.Fatalf("the example repository has %d targets, want at least 7", len(targets))
	}
	for _, target := range targets {
		t.Run(target.String(), func(t *testing.T) {
			g := NewWithT(t)
			res, err := Render(context.Background(), exampleRepo, target, Options{Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).To(BeEmpty())
			g.Expect(res.Digest).To(HavePrefix("sha256:"))
			golden(t, filepath.Join("testdata", "example", target.Tenant+"-"+target.Cluster, "want.yaml"), renderYAML(t, res))
		})
	}
}

func TestRender_nameReferencesFollowRenames(t *testing.T) {
	g := NewWithT(t)
	res, err := Render(context.Background(), exampleRepo, Target{Tenant: "shop", Cluster: "prod"}, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).To(BeEmpty())
	byName := map[string]map[string]any{}
	for _, o := range res.Objects {
		g.Expect(o.GetNamespace()).To(Equal("cyclone-shop"))
		g.Expect(o.GetLabels()).To(HaveKeyWithValue(convention.TenantLabel, "shop"))
		g.Expect(o.GetLabels()).To(HaveKeyWithValue(convention.TargetLabel, "prod"))
		byName[o.GetKind()+"/"+o.GetName()] = o.Object
	}
	g.Expect(byName).To(HaveKey("Workflow/ci-prod"))
	wf := byName["Workflow/ci-prod"]["spec"].(map[string]any)
	var names, deps, sources []string
	for _, s := range wf["stages"].([]any) {
		st := s.(map[string]any)
		names = append(names, st["name"].(string))
		for _, d := range asSlice(st["depends"]) {
			deps = append(deps, d.(string))
		}
		for _, a := range asSlice(st["artifacts"]) {
			sources = append(sources, a.(map[string]any)["source"].(string))
		}
	}
	g.Expect(names).To(Equal([]string{"checkout-prod", "unit-test-prod", "lint-prod", "image-build-prod", "notify-prod"}))
	g.Expect(deps).To(ConsistOf("checkout-prod", "checkout-prod", "unit-test-prod", "lint-prod", "image-build-prod"))
	g.Expect(sources).To(Equal([]string{"unit-test-prod/coverage"}))

	stage := byName["Stage/image-build-prod"]["spec"].(map[string]any)["pod"].(map[string]any)
	g.Expect(stage["inputs"].(map[string]any)["resources"].([]any)[0].(map[string]any)["name"]).To(Equal("source-prod"))
	g.Expect(stage["outputs"].(map[string]any)["resources"].([]any)[0].(map[string]any)["name"]).To(Equal("image-prod"))
	pull := stage["spec"].(map[string]any)["imagePullSecrets"].([]any)[0].(map[string]any)["name"].(string)
	g.Expect(pull).To(HavePrefix("registry-credentials-prod-"))
	g.Expect(byName).To(HaveKey("Secret/" + pull))

	run := byName["WorkflowRun/release-1-8-2-prod"]["spec"].(map[string]any)
	g.Expect(run["workflowRef"].(map[string]any)["name"]).To(Equal("ci-prod"))
	g.Expect(run["startStages"]).To(Equal([]any{"checkout-prod"}))
	g.Expect(run["resources"].([]any)[0].(map[string]any)["name"]).To(Equal("source-prod"))
	g.Expect(run["stages"].([]any)[0].(map[string]any)["name"]).To(Equal("unit-test-prod"))
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func TestRender_isDeterministic(t *testing.T) {
	g := NewWithT(t)
	target := Target{Tenant: "payments", Cluster: "eu"}
	var outputs [][]byte
	var digests []string
	for range 3 {
		res, err := Render(context.Background(), exampleRepo, target, Options{Revision: "r1"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Errors).To(BeEmpty())
		outputs = append(outputs, renderYAML(t, res))
		digests = append(digests, res.Digest)
	}
	g.Expect(outputs[1]).To(Equal(outputs[0]))
	g.Expect(outputs[2]).To(Equal(outputs[0]))
	g.Expect(digests).To(HaveEach(digests[0]))
}

func TestRender_reportsEveryError(t *testing.T) {
	g := NewWithT(t)
	res, err := Render(context.Background(), "testdata/invalid", Target{Tenant: "t", Cluster: DefaultCluster}, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Objects).To(BeEmpty())
	g.Expect(res.Digest).To(BeEmpty())
	golden(t, "testdata/invalid/want.txt", errorLines(res))
}

func TestRender_refusesWhatTheEngineWouldNotRun(t *testing.T) {
	g := NewWithT(t)
	res, err := Render(context.Background(), "testdata/unrunnable", Target{Tenant: "t", Cluster: DefaultCluster}, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Objects).To(BeEmpty())
	golden(t, "testdata/unrunnable/want.txt", errorLines(res))
}

func TestRender_refusesHostileRepositories(t *testing.T) {
	cases, err := os.ReadDir("testdata/hostile")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			g := NewWithT(t)
			// Work on a copy inside a directory of its own, so that "../"
			// paths and symlinks have somewhere to escape to.
			outside := t.TempDir()
			g.Expect(os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\n"), 0o644)).To(Succeed())
			root := filepath.Join(outside, "repo")
			g.Expect(os.CopyFS(root, os.DirFS(filepath.Join("testdata/hostile", c.Name())))).To(Succeed())
			base := filepath.Join(root, "tenants/t/base")
			switch c.Name() {
			case "symlink":
				g.Expect(os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(base, "link.yaml"))).To(Succeed())
			case "symlink-dir":
				shared := filepath.Join(outside, "shared")
				g.Expect(os.MkdirAll(shared, 0o755)).To(Succeed())
				g.Expect(os.WriteFile(filepath.Join(shared, "kustomization.yaml"), []byte("resources:\n- ../secret.yaml\n"), 0o644)).To(Succeed())
				g.Expect(os.Symlink(shared, filepath.Join(base, "shared"))).To(Succeed())
			case "big-file":
				big := bytes.Repeat([]byte("# padding to push the file over the size cap\n"), DefaultMaxFileSize/40)
				g.Expect(os.WriteFile(filepath.Join(base, "big.yaml"), big, 0o644)).To(Succeed())
			}
			res, err := Render(context.Background(), root, Target{Tenant: "t", Cluster: DefaultCluster}, Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).NotTo(BeEmpty())
			g.Expect(res.Objects).To(BeEmpty(), "no partial output")
			g.Expect(res.Digest).To(BeEmpty())
			golden(t, filepath.Join("testdata/hostile", c.Name(), "want.txt"), errorLines(res))
		})
	}
}
