package cycloneimport

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/testcluster"
)

// BenchmarkImport_thousandStages imports a tenant of 1,000 Stages, 100
// Workflows of ten stages each and 100 cron WorkflowTriggers: reading
// it, writing it and checking it with gyre's render.
func BenchmarkImport_thousandStages(b *testing.B) {
	testcluster.Require(b)
	ctx := context.Background()
	const tenant = "bulk"
	if err := loadBulk(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		rep, err := Import(ctx, testEnv.Config, filepath.Join(b.TempDir(), fmt.Sprint(i)), Options{Tenants: []string{tenant}})
		if err != nil {
			b.Fatal(err)
		}
		if n := rep.Tenants[0].Objects["Stage"]; n != 1000 {
			b.Fatalf("imported %d Stages", n)
		}
	}
	b.ReportMetric(1200, "objects/op")
}

// loadBulk loads the benchmark's tenant once: the framework calls a
// benchmark more than once.
var loadBulk = sync.OnceValue(func() error { return bulkTenant(context.Background(), testEnv.Client, "bulk") })

// bulkTenant creates the benchmark's tenant.
func bulkTenant(ctx context.Context, c client.Client, tenant string) error {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(namespace(tenant))
	if err := c.Create(ctx, ns); err != nil {
		return err
	}
	var err error
	create := func(kind, name string, spec map[string]any) {
		if err != nil {
			return
		}
		o := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		o.SetAPIVersion("cyclone.dev/v1alpha1")
		o.SetKind(kind)
		o.SetNamespace(namespace(tenant))
		o.SetName(name)
		err = c.Create(ctx, o)
	}
	for w := range 100 {
		var stages []any
		for s := range 10 {
			name := fmt.Sprintf("wf%03d-stage%d", w, s)
			create("Stage", name, map[string]any{"pod": map[string]any{"spec": map[string]any{
				"containers": []any{map[string]any{"name": "main", "image": "busybox:1.37", "command": []any{"true"}}}}}})
			item := map[string]any{"name": name}
			if s > 0 {
				item["depends"] = []any{fmt.Sprintf("wf%03d-stage%d", w, s-1)}
			}
			stages = append(stages, item)
		}
		create("Workflow", fmt.Sprintf("wf%03d", w), map[string]any{"stages": stages})
		create("WorkflowTrigger", fmt.Sprintf("wf%03d-nightly", w), map[string]any{"type": "Cron", "cron": map[string]any{"schedule": "0 2 * * *"},
			"workflowRef": map[string]any{"kind": "workflow.cyclone.dev", "name": fmt.Sprintf("wf%03d", w)}})
	}
	return err
}
