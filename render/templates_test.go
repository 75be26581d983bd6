package render

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// TestRender_cycloneTemplateList renders a file of stage templates in
// Cyclone's shape, one YAML list of Stages, beside an ordinary Stage.
func TestRender_cycloneTemplateList(t *testing.T) {
	g := NewWithT(t)
	const repo = "testdata/templates"
	res, err := Render(context.Background(), repo, Target{Tenant: "t", Cluster: DefaultCluster}, Options{Revision: "r1"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).To(BeEmpty())
	golden(t, filepath.Join(repo, "want.yaml"), renderYAML(t, res))

	containers := map[string]string{}
	for _, o := range res.Objects {
		g.Expect(o.GetKind()).To(Equal("Stage"))
		if o.GetLabels()[cyclonev1alpha1.LabelStageTemplate] != "true" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "pod", "spec", "containers")
		g.Expect(cs).To(HaveLen(1))
		containers[o.GetName()], _ = cs[0].(map[string]any)["name"].(string)
	}
	g.Expect(res.Objects).To(HaveLen(3), "each item of the list is an object, beside the ordinary Stage")
	g.Expect(containers).To(Equal(map[string]string{"go-build": "c0", "npm-build": "c0"}),
		"the templates are kept, their unnamed containers named as Cyclone names them")
}

// TestRender_yamlListsOnlyInResources: a generator's data file that holds
// a YAML list of objects reaches the ConfigMap byte for byte; only files
// a kustomization lists under resources are read as lists of objects.
func TestRender_yamlListsOnlyInResources(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	base := filepath.Join(root, "tenants/t/base")
	g.Expect(os.MkdirAll(base, 0o755)).To(Succeed())
	list, err := os.ReadFile("testdata/templates/tenants/t/base/build-templates.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(base, "kustomization.yaml"), []byte("configMapGenerator:\n- name: templates\n  files:\n  - build-templates.yaml\n"), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(base, "build-templates.yaml"), list, 0o644)).To(Succeed())
	res, err := Render(context.Background(), root, Target{Tenant: "t", Cluster: DefaultCluster}, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).To(BeEmpty())
	g.Expect(res.Objects).To(HaveLen(1))
	var cm corev1.ConfigMap
	g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(res.Objects[0].Object, &cm)).To(Succeed())
	g.Expect(cm.Data["build-templates.yaml"]).To(Equal(string(list)))
}
