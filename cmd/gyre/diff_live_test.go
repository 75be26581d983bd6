package main

import (
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/render"
)

func TestDiff_live(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane; -short starts none")
	}
	g := NewWithT(t)
	ctx := context.Background()
	cluster, err := testcluster.Start(ctx, testcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = cluster.Stop() })

	// Apply the sandbox target as gyre would, then drift from it: edit a
	// Stage in the cluster, delete the Workflow, and leave an object the
	// repository no longer has.
	res, err := render.Render(ctx, exampleRepo, render.Target{Tenant: "sandbox", Cluster: render.DefaultCluster}, render.Options{Revision: "main@sha1:0000000000000000000000000000000000000000"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).To(BeEmpty())
	cs := kubernetes.NewForConfigOrDie(cluster.Config)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cyclone-sandbox"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	apply := func(obj *unstructured.Unstructured) {
		data, err := obj.MarshalJSON()
		g.Expect(err).NotTo(HaveOccurred())
		gvr := obj.GroupVersionKind().GroupVersion().WithResource(map[string]string{"Stage": "stages", "Workflow": "workflows", "Resource": "resources"}[obj.GetKind()])
		force := true
		_, err = dyn.Resource(gvr).Namespace("cyclone-sandbox").Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "gyre-test", Force: &force})
		g.Expect(err).NotTo(HaveOccurred())
	}
	for _, obj := range res.Objects {
		switch obj.GetKind() {
		case "Workflow":
			continue // deleted from the cluster: the diff adds it back
		case "Stage":
			drifted := obj.DeepCopy()
			g.Expect(unstructured.SetNestedSlice(drifted.Object, []any{map[string]any{"name": "main", "image": "busybox:latest"}}, "spec", "pod", "spec", "containers")).To(Succeed())
			apply(drifted)
		default:
			apply(obj)
		}
	}
	orphan := res.Objects[0].DeepCopy()
	orphan.SetName("old-" + orphan.GetName())
	apply(orphan)

	stdout, stderr, code := execute(t, "diff", "--live", "--kubeconfig", cluster.Kubeconfig, "-o", "json", exampleRepo)
	g.Expect(stderr).To(BeEmpty())
	g.Expect(code).To(Equal(1))
	var d repoDiff
	g.Expect(json.Unmarshal([]byte(stdout), &d)).To(Succeed())
	g.Expect(d.Base).To(Equal("live"))
	var sandbox *targetDiff
	for i := range d.Targets {
		if d.Targets[i].Tenant == "sandbox" {
			sandbox = &d.Targets[i]
		}
	}
	g.Expect(sandbox).NotTo(BeNil())
	g.Expect(sandbox.Added).To(ConsistOf(HaveField("ID", "Workflow/hello")))
	g.Expect(sandbox.Removed).To(ConsistOf(HaveField("ID", "Resource/old-playground")))
	g.Expect(sandbox.Changed).To(ConsistOf(HaveField("ID", "Stage/hello")))
	g.Expect(sandbox.Changed[0].Diff).To(ContainSubstring("-      - image: busybox:latest"))
	g.Expect(sandbox.Changed[0].Diff).To(ContainSubstring("+        image: busybox:1.37"))
	g.Expect(sandbox.Changed[0].Diff).NotTo(ContainSubstring("managedFields"))
}
