package cycloneimport

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestScan checks, without a cluster, which Secrets and ConfigMaps scan
// finds behind each way a Cyclone object can name one, and in which
// namespace gyre needs each.
func TestScan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		obj   string
		want  []string // kind/worker/name: keys
		notes []string
	}{
		{
			name: "A secret reference in a Resource parameter needs the Secret and key in the tenant namespace.",
			obj: `{"apiVersion":"cyclone.dev/v1alpha1","kind":"Resource","metadata":{"name":"src"},
				"spec":{"type":"Git","parameters":[{"name":"TOKEN","value":"${secrets.cyclone-shop:git-auth/data.token}"}]}}`,
			want: []string{"Secret/false/git-auth: [token]"},
		},
		{
			name: "A secret reference to another namespace is a note, not a Secret to carry.",
			obj: `{"apiVersion":"cyclone.dev/v1alpha1","kind":"Resource","metadata":{"name":"src"},
				"spec":{"type":"Git","parameters":[{"name":"TOKEN","value":"${secrets.cyclone-ops:git-auth/data.token}"}]}}`,
			notes: []string{"spec.parameters[0].value refers to Secret cyclone-ops/git-auth; a run reads Secrets of its own namespace cyclone-shop only: copy it there and change the reference"},
		},
		{
			name: "A stage's volumes, projected sources, env and envFrom need their objects in the worker namespace.",
			obj: `{"apiVersion":"cyclone.dev/v1alpha1","kind":"Stage","metadata":{"name":"build"},"spec":{"pod":{"spec":{
				"imagePullSecrets":[{"name":"pull"}],
				"volumes":[{"name":"a","secret":{"secretName":"certs","items":[{"key":"ca.crt","path":"ca"}]}},{"name":"b","configMap":{"name":"conf"}},
				           {"name":"c","projected":{"sources":[{"secret":{"name":"proj"}}]}}],
				"containers":[{"name":"main","image":"x","env":[{"name":"P","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}}],
				               "envFrom":[{"configMapRef":{"name":"settings"}}]}]}}}}`,
			want: []string{"ConfigMap/true/conf: []", "ConfigMap/true/settings: []", "Secret/true/certs: [ca.crt]", "Secret/true/db: [password]", "Secret/true/proj: []", "Secret/true/pull: []"},
		},
		{
			name: "A template's argument is not an object yet.",
			obj: `{"apiVersion":"cyclone.dev/v1alpha1","kind":"Stage","metadata":{"name":"t","labels":{"stage.cyclone.dev/template":"true"}},"spec":{"pod":{"spec":{
				"containers":[{"name":"main","image":"x","envFrom":[{"secretRef":{"name":"{{ secret }}"}}]}]}}}}`,
		},
		{
			name: "An SCM trigger needs its Secret with the webhookSecret key, and a run's preset volumes theirs in the worker namespace.",
			obj: `{"apiVersion":"cyclone.dev/v1alpha1","kind":"WorkflowTrigger","metadata":{"name":"scm"},"spec":{"type":"SCM",
				"scm":{"secret":"gitlab","repo":"shop/api"},"workflowRef":{"name":"ci"},
				"volumes":[{"type":"Secret","objectName":"npmrc","path":".npmrc","mountPath":"/root/.npmrc"},{"type":"HostPath","path":"/etc/localtime","mountPath":"/etc/localtime"}]}}`,
			want: []string{"Secret/false/gitlab: [webhookSecret]", "Secret/true/npmrc: [.npmrc]"},
		},
		{
			name:  "A Project's integrations and a Resource's integration binding are notes: gyre has no integrations.",
			obj:   `{"apiVersion":"cyclone.dev/v1alpha1","kind":"Project","metadata":{"name":"shop"},"spec":{"integrations":[{"type":"SCM","name":"gitlab"}]}}`,
			notes: []string{"spec.integrations names Cyclone integration gitlab (SCM); gyre has no integrations and ignores it"},
		},
		{
			name: "A Resource's integration binding and persistent PVC are notes: neither comes along.",
			obj: `{"apiVersion":"cyclone.dev/v1alpha1","kind":"Resource","metadata":{"name":"img"},"spec":{"type":"Image",
				"bind":{"integrationType":"DockerRegistry","paramBindings":{"USER":"user"}},"persistent":{"pvc":"cache","path":"img"}}}`,
			notes: []string{
				"spec.bind takes parameters from a Cyclone DockerRegistry integration; gyre has no integrations: give those parameters values",
				"spec.persistent.pvc: PVC cache is data, not carried over: create it in cyclone-shop-worker on every cluster the tenant runs on",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			o := &unstructured.Unstructured{}
			g.Expect(yaml.Unmarshal([]byte(tc.obj), &o.Object)).To(Succeed())
			n, notes, err := scan("shop", []*unstructured.Unstructured{o})
			g.Expect(err).NotTo(HaveOccurred())
			var got []string
			for _, x := range n.sorted() {
				got = append(got, sprintNeed(x))
			}
			g.Expect(got).To(Equal(tc.want))
			var msgs []string
			for _, nt := range notes {
				msgs = append(msgs, nt.Message)
			}
			g.Expect(msgs).To(Equal(tc.notes))
		})
	}
}

func sprintNeed(x *need) string {
	return fmt.Sprintf("%s/%t/%s: %v", x.kind, x.worker, x.name, sortedKeys(x.keys))
}
