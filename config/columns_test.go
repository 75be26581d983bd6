package config_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// table returns the cells kubectl get would print for one object of
// resource in namespace, by column name.
func table(g Gomega, namespace, resource, name string) map[string]any {
	cfg := rest.CopyConfig(cluster.Config)
	cfg.GroupVersion = &cyclonev1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	tbl := &metav1.Table{}
	g.Expect(rc.Get().Namespace(namespace).Resource(resource).Name(name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		Do(context.Background()).Into(tbl)).To(Succeed())
	g.Expect(tbl.Rows).To(HaveLen(1))
	cells := map[string]any{}
	for i, c := range tbl.ColumnDefinitions {
		cells[c.Name] = tbl.Rows[0].Cells[i]
	}
	return cells
}

func TestCRDs_printerColumnsOfStagesAndWorkflows(t *testing.T) {
	testcluster.Require(t)
	if cluster == nil {
		t.Skip("needs the test control plane; not started in -short mode")
	}
	g := NewWithT(t)
	ctx := context.Background()
	gyreScheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	admin, err := client.New(cluster.Config, client.Options{Scheme: gyreScheme})
	g.Expect(err).NotTo(HaveOccurred())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "columns-"}}
	g.Expect(admin.Create(ctx, ns)).To(Succeed())
	t.Cleanup(func() { _ = admin.Delete(context.Background(), ns) })

	g.Expect(admin.Create(ctx, &cyclonev1alpha1.Stage{
		ObjectMeta: metav1.ObjectMeta{Name: "build", Namespace: ns.Name},
		Spec: cyclonev1alpha1.StageSpec{Pod: &cyclonev1alpha1.PodWorkload{
			Inputs: cyclonev1alpha1.Inputs{Resources: []cyclonev1alpha1.ResourceItem{{Name: "source", Path: "/workspace/src"}}},
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "golang:1.27"}}},
		}},
	})).To(Succeed())
	g.Expect(admin.Create(ctx, &cyclonev1alpha1.Workflow{
		ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns.Name},
		Spec:       cyclonev1alpha1.WorkflowSpec{Stages: []cyclonev1alpha1.StageItem{{Name: "build"}}},
	})).To(Succeed())

	stage := table(g, ns.Name, "stages", "build")
	g.Expect(stage).To(HaveKeyWithValue("Image", "golang:1.27"))
	g.Expect(stage).To(HaveKeyWithValue("Input", "source"))
	g.Expect(table(g, ns.Name, "workflows", "ci")).To(HaveKeyWithValue("First Stage", "build"))
}
