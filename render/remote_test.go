package render

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// TestRender_remoteBases loads a base from a Git repository by URL, as
// kustomize does for github.com/... bases; a file:// URL keeps the test
// off the network.
func TestRender_remoteBases(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	g := NewWithT(t)
	remote := filepath.Join(t.TempDir(), "shared")
	g.Expect(os.MkdirAll(filepath.Join(remote, "pipelines"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(remote, "pipelines", "kustomization.yaml"), []byte("resources:\n- settings.yaml\n"), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(remote, "pipelines", "settings.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-settings\ndata:\n  region: eu\n"), 0o644)).To(Succeed())
	// A base that brings its own OpenAPI schema, which precheck cannot
	// see before kustomize fetches it.
	g.Expect(os.MkdirAll(filepath.Join(remote, "schema"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(remote, "schema", "kustomization.yaml"), []byte("openapi:\n  path: schema.json\nresources:\n- stage.yaml\n"), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(remote, "schema", "schema.json"), []byte(schemaJSON), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(remote, "schema", "stage.yaml"), []byte(stageYAML), 0o644)).To(Succeed())
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "shared"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = remote
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
	}

	root := t.TempDir()
	base := filepath.Join(root, "tenants/t/base")
	g.Expect(os.MkdirAll(base, 0o755)).To(Succeed())
	ref := "file://" + remote + "//pipelines?ref=main"
	g.Expect(os.WriteFile(filepath.Join(base, "kustomization.yaml"), []byte("resources:\n- "+ref+"\n"), 0o644)).To(Succeed())
	target := Target{Tenant: "t", Cluster: DefaultCluster}

	t.Run("Remote bases are refused by default.", func(t *testing.T) {
		g := NewWithT(t)
		res, err := Render(context.Background(), root, target, Options{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Objects).To(BeEmpty())
		g.Expect(res.Errors).To(ConsistOf(HaveField("Message", ContainSubstring("the repository does not allow remote bases"))))
	})
	t.Run("Remote bases load when allowed, and are never cached.", func(t *testing.T) {
		g := NewWithT(t)
		r := NewRenderer()
		for range 2 {
			res, err := r.Render(context.Background(), root, target, Options{AllowRemoteBases: true})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).To(BeEmpty())
			g.Expect(res.Objects).To(HaveLen(1))
			g.Expect(res.Objects[0].GetName()).To(Equal("shared-settings"))
			g.Expect(res.Objects[0].GetNamespace()).To(Equal("cyclone-t"))
		}
		g.Expect(r.builds.Load()).To(BeEquivalentTo(2))
	})
	t.Run("A remote base that sets an OpenAPI schema is refused, and other targets' patches merge as before.", func(t *testing.T) {
		g := NewWithT(t)
		root := writeRepo(t, map[string]string{
			"tenants/remote/default/kustomization.yaml":  "resources:\n- file://" + remote + "//schema?ref=main\n",
			"tenants/patched/base/kustomization.yaml":    "resources:\n- stage.yaml\n",
			"tenants/patched/base/stage.yaml":            stageYAML,
			"tenants/patched/default/kustomization.yaml": "resources:\n- ../base\npatches:\n- patch: |\n    apiVersion: cyclone.dev/v1alpha1\n    kind: Stage\n    metadata:\n      name: test\n    spec:\n      pod:\n        spec:\n          containers:\n          - name: lint\n            image: golangci/golangci-lint:v2\n",
		})
		res, err := Render(context.Background(), root, Target{Tenant: "remote", Cluster: DefaultCluster}, Options{AllowRemoteBases: true})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Objects).To(BeEmpty())
		g.Expect(res.Errors).To(ConsistOf(HaveField("Field", "openapi")))

		res, err = Render(context.Background(), root, Target{Tenant: "patched", Cluster: DefaultCluster}, Options{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Errors).To(BeEmpty())
		containers, _, _ := unstructuredSlice(res.Objects[0].Object, "spec", "pod", "spec", "containers")
		g.Expect(containers).To(HaveLen(1), "the patch replaces the list, as without a schema for Stages")
	})
}
