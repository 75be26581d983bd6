package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gyreops/gyre/internal/testcluster"
)

// corpusDoc is one YAML document of testdata/cyclone.
type corpusDoc struct {
	name string // file:index, for failure messages
	json []byte
}

func readCorpus(t *testing.T) []corpusDoc {
	t.Helper()
	files, err := filepath.Glob("../testdata/cyclone/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus under testdata/cyclone: %v", err)
	}
	var docs []corpusDoc
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			j, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatalf("%s[%d]: %v", file, i, err)
			}
			docs = append(docs, corpusDoc{name: fmt.Sprintf("%s#%d", filepath.Base(file), i), json: j})
		}
	}
	return docs
}

// TestCycloneCorpus_roundTrips decodes every Cyclone document strictly into
// gyre's types and encodes it again: an unknown field is an error and a
// field the types drop shows up as a difference.
func TestCycloneCorpus_roundTrips(t *testing.T) {
	for _, doc := range readCorpus(t) {
		t.Run(doc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := typedFor(g, doc.json)
			g.Expect(yaml.UnmarshalStrict(doc.json, obj)).To(Succeed(), "strict decode")
			out, err := json.Marshal(obj)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(normalise(g, out)).To(Equal(normalise(g, doc.json)), "round trip changed the document")
		})
	}
}

// TestCycloneCorpus_acceptedByAPIServer creates every Cyclone document on a
// real API server and reads it back: the CRD schemas must accept it and
// prune none of its fields.
func TestCycloneCorpus_acceptedByAPIServer(t *testing.T) {
	testcluster.Require(t)
	ctx := context.Background()
	ns := newNamespace(t)
	for _, doc := range readCorpus(t) {
		t.Run(doc.name, func(t *testing.T) {
			g := NewWithT(t)
			u := &unstructured.Unstructured{}
			g.Expect(u.UnmarshalJSON(doc.json)).To(Succeed())
			if u.GetKind() != "ExecutionCluster" {
				u.SetNamespace(ns)
			}
			want := u.DeepCopy()
			g.Expect(k8sClient.Create(ctx, u)).To(Succeed())
			t.Cleanup(func() { _ = k8sClient.Delete(ctx, u) })

			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(u.GroupVersionKind())
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
			// Defaults may add fields; none may be pruned or changed.
			g.Expect(missing("spec", want.Object["spec"], got.Object["spec"])).To(BeEmpty(), "the API server pruned or changed spec")
		})
	}
}

// missing lists the paths below path where got lacks or differs from what
// want holds; got may hold more.
func missing(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		gm, ok := got.(map[string]any)
		if !ok {
			return []string{path}
		}
		var out []string
		for k, v := range w {
			out = append(out, missing(path+"."+k, v, gm[k])...)
		}
		return out
	case []any:
		gl, ok := got.([]any)
		if !ok || len(gl) != len(w) {
			return []string{path}
		}
		var out []string
		for i := range w {
			out = append(out, missing(fmt.Sprintf("%s[%d]", path, i), w[i], gl[i])...)
		}
		return out
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s: %v, got %v", path, want, got)}
		}
		return nil
	}
}

func typedFor(g Gomega, doc []byte) client.Object {
	var tm metav1.TypeMeta
	g.Expect(json.Unmarshal(doc, &tm)).To(Succeed())
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	obj, err := scheme.New(gvk)
	g.Expect(err).NotTo(HaveOccurred(), "kind %s is not registered", gvk)
	return obj.(client.Object)
}

// normalise decodes a JSON document and drops nulls and empty objects and
// lists: Go encodes an unset struct field as {} (corev1.Container's
// resources, say) and an unset time as null, which adds nothing and loses
// nothing.
func normalise(g Gomega, b []byte) any {
	var v any
	g.Expect(json.Unmarshal(b, &v)).To(Succeed())
	return dropEmpty(v)
}

func dropEmpty(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e = dropEmpty(e); e == nil {
				delete(v, k)
			} else {
				v[k] = e
			}
		}
		if len(v) == 0 {
			return nil
		}
	case []any:
		for i, e := range v {
			v[i] = dropEmpty(e)
		}
		if len(v) == 0 {
			return nil
		}
	}
	return v
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.ToLower(t.Name()[:min(len(t.Name()), 30)]) + "-"}}
	ns.GenerateName = strings.NewReplacer("_", "-", "/", "-").Replace(ns.GenerateName)
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}
