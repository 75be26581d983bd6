package render

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
)

// schemaJSON is a custom OpenAPI schema that makes kustomize merge a
// Stage's containers by name in strategic merge patches.
const schemaJSON = `{"definitions": {"dev.cyclone.v1alpha1.Stage": {
  "type": "object",
  "x-kubernetes-group-version-kind": [{"group": "cyclone.dev", "kind": "Stage", "version": "v1alpha1"}],
  "properties": {"spec": {"type": "object", "properties": {"pod": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "containers": {"type": "array", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
      "items": {"type": "object", "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}}}}}}}}}}}}
`

func TestRender_refusesOpenAPISchemas(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"tenants/custom/default/kustomization.yaml":  "openapi:\n  path: schema.json\nresources:\n- stage.yaml\n",
		"tenants/custom/default/schema.json":         schemaJSON,
		"tenants/custom/default/stage.yaml":          stageYAML,
		"tenants/version/base/kustomization.yaml":    "openapi:\n  version: v1.21.2\nresources:\n- stage.yaml\n",
		"tenants/version/base/stage.yaml":            stageYAML,
		"tenants/version/default/kustomization.yaml": "resources:\n- ../base\n",
		"tenants/patched/base/kustomization.yaml":    "resources:\n- stage.yaml\n",
		"tenants/patched/base/stage.yaml":            stageYAML,
		"tenants/patched/default/kustomization.yaml": "resources:\n- ../base\npatches:\n- patch: |\n    apiVersion: cyclone.dev/v1alpha1\n    kind: Stage\n    metadata:\n      name: test\n    spec:\n      pod:\n        spec:\n          containers:\n          - name: lint\n            image: golangci/golangci-lint:v2\n",
	})
	containers := func(g Gomega, tenant string) []any {
		res, err := Render(context.Background(), root, Target{Tenant: tenant, Cluster: DefaultCluster}, Options{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Errors).To(BeEmpty())
		cs, _, _ := unstructuredSlice(res.Objects[0].Object, "spec", "pod", "spec", "containers")
		return cs
	}
	g := NewWithT(t)
	before := containers(g, "patched")
	g.Expect(before).To(HaveLen(1), "without a schema for Stages, a patch replaces the list")

	for _, tc := range []struct {
		name, tenant, file string
	}{
		{"a kustomization that brings its own schema is refused, naming the field", "custom", "tenants/custom/default/kustomization.yaml"},
		{"a base that names a built-in schema version is refused, naming its file", "version", "tenants/version/base/kustomization.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := Render(context.Background(), root, Target{Tenant: tc.tenant, Cluster: DefaultCluster}, Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).To(ConsistOf(Error{File: tc.file, Field: "openapi", Message: openAPIRefusal}))
			g.Expect(res.Objects).To(BeEmpty())
		})
	}

	t.Run("another tenant's patches merge as before once a schema was refused", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(containers(g, "patched")).To(Equal(before))
	})
}
