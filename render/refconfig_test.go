package render

import (
	"context"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// TestRender_referencesFollowRenamesHoweverWritten renders a tenant
// whose overlay renames its base's objects, with a Stage's reference to
// a ConfigMap or Secret written in each of the ways a repository may
// write it, and checks that the reference follows the rename: a render
// gives kustomize only the field specs whose words its files hold (see
// refChoice), and must not lose a reference that way.
func TestRender_referencesFollowRenamesHoweverWritten(t *testing.T) {
	// beside is a base of stage and the ConfigMap it refers to.
	beside := func(stage string) map[string]string {
		return map[string]string{
			"tenants/t/base/stage.yaml":         stage,
			"tenants/t/base/settings.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  A: b\n",
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\n- settings.yaml\n",
		}
	}
	cases := []struct {
		name  string
		files map[string]string
		// want maps a field of Stage test-one, dot-separated with list
		// indexes, to its value.
		want map[string]string
	}{{
		name:  "in the Stage's own file",
		files: beside(stageYAML),
		want:  map[string]string{"spec.pod.spec.containers.0.envFrom.0.configMapRef.name": "settings-one"},
	}, {
		name: "added by an inline patch",
		files: map[string]string{
			"tenants/t/base/stage.yaml": plainStage,
			"tenants/t/base/token.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  t: x\n",
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\n- token.yaml\npatches:\n- target: {kind: Stage, name: test}\n  patch: |-\n" +
				"    - op: add\n      path: /spec/pod/spec/containers/0/env\n      value: [{name: A, valueFrom: {secretKeyRef: {name: token, key: t}}}]\n",
		},
		want: map[string]string{"spec.pod.spec.containers.0.env.0.valueFrom.secretKeyRef.name": "token-one"},
	}, {
		name:  "with its keys spelled in YAML escapes",
		files: beside(strings.Replace(stageYAML, "- configMapRef:", `- "config\x4dap\x52ef":`, 1)),
		want:  map[string]string{"spec.pod.spec.containers.0.envFrom.0.configMapRef.name": "settings-one"},
	}, {
		name: "to a generated ConfigMap, beside an image the overlay sets",
		files: map[string]string{
			"tenants/t/base/stage.yaml":         stageYAML,
			"tenants/t/base/kustomization.yaml": "resources:\n- stage.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - A=b\n",
			"tenants/t/one/kustomization.yaml":  "resources:\n- ../base\nnameSuffix: -one\nimages:\n- name: golang\n  newTag: \"1.28\"\n",
		},
		want: map[string]string{
			"spec.pod.spec.containers.0.envFrom.0.configMapRef.name": "settings-one-b9t2424hkf",
			"spec.pod.spec.containers.0.image":                       "golang:1.28",
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			files := map[string]string{"tenants/t/one/kustomization.yaml": "resources:\n- ../base\nnameSuffix: -one\n"}
			for p, c := range tc.files {
				files[p] = c
			}
			res, err := Render(context.Background(), writeRepo(t, files), Target{Tenant: "t", Cluster: "one"}, Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Errors).To(BeEmpty())
			var stage map[string]any
			for _, o := range res.Objects {
				if o.GetKind() == "Stage" && o.GetName() == "test-one" {
					stage = o.Object
				}
			}
			g.Expect(stage).NotTo(BeNil(), "Stage test-one in\n%s", renderYAML(t, res))
			for field, want := range tc.want {
				g.Expect(fieldAt(stage, field)).To(Equal(want), field)
			}
		})
	}
}

// fieldAt is the value at a dot-separated path of map keys and list
// indexes, nil when there is none.
func fieldAt(v any, path string) any {
	for p := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}
