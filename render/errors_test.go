package render

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// TestRender_errorMessages renders repositories with one mistake each and
// compares the errors a user sees with testdata/errors/<case>/want.txt.
// Each names the file by its path in the repository, with the object and
// field when they are known, and says no more than what is wrong. A case
// with a tenants/t/prod overlay renders that cluster, otherwise the
// default one.
func TestRender_errorMessages(t *testing.T) {
	cases, err := os.ReadDir("testdata/errors")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			g := NewWithT(t)
			root := filepath.Join("testdata/errors", c.Name())
			target := Target{Tenant: "t", Cluster: DefaultCluster}
			if fi, err := os.Stat(filepath.Join(root, "tenants/t/prod")); err == nil && fi.IsDir() {
				target.Cluster = "prod"
			}
			res, err := Render(context.Background(), root, target, Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).NotTo(BeEmpty())
			g.Expect(res.Objects).To(BeEmpty())
			golden(t, filepath.Join(root, "want.txt"), errorLines(res))
		})
	}
}

// TestRender_dataFileThatIsNotYAML: a file kustomize reads as data, not
// as YAML, may be anything, even when its name ends in .yaml.
func TestRender_dataFileThatIsNotYAML(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	base := filepath.Join(root, "tenants/t/base")
	g.Expect(os.MkdirAll(base, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(base, "kustomization.yaml"), []byte("configMapGenerator:\n- name: templates\n  files:\n  - template.yaml\n"), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(base, "template.yaml"), []byte("image: [{{ .Image }}\n"), 0o644)).To(Succeed())
	res, err := Render(context.Background(), root, Target{Tenant: "t", Cluster: DefaultCluster}, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).To(BeEmpty())
	g.Expect(res.Objects).To(HaveLen(1))
}
