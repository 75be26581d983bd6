package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gyreops/gyre/internal/fsutil"
)

// benchRepo writes a repository of tenants × 2 clusters, each target
// rendering objectsPerTarget Cyclone objects from its tenant base, and
// returns its root and targets.
func benchRepo(b *testing.B, tenants, objectsPerTarget int) (string, []Target) {
	b.Helper()
	root := b.TempDir()
	write := func(rel, content string) { writeBenchFile(b, root, rel, content) }
	// Each stage reads one resource; the workflow chains the stages;
	// one trigger runs it: (objects-2)/2 resources and stages.
	pairs := (objectsPerTarget - 2) / 2
	var targets []Target
	for t := range tenants {
		tenant := fmt.Sprintf("team-%03d", t)
		var docs, items string
		for i := range pairs {
			docs += fmt.Sprintf(`---
apiVersion: cyclone.dev/v1alpha1
kind: Resource
metadata:
  name: src-%[1]d
spec:
  type: Git
  parameters:
  - name: SCM_URL
    value: https://git.example.com/%[2]s/repo-%[1]d.git
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: step-%[1]d
spec:
  pod:
    inputs:
      resources:
      - name: src-%[1]d
        path: /src
    spec:
      containers:
      - name: main
        image: golang:1.27
        command: [go, test, ./...]
`, i, tenant)
			items += fmt.Sprintf("  - name: step-%d\n", i)
			if i > 0 {
				items += fmt.Sprintf("    depends: [step-%d]\n", i-1)
			}
		}
		docs += "---\napiVersion: cyclone.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: pipeline\nspec:\n  stages:\n" + items
		docs += "---\napiVersion: cyclone.dev/v1alpha1\nkind: WorkflowTrigger\nmetadata:\n  name: nightly\nspec:\n  type: Cron\n  cron:\n    schedule: 0 2 * * *\n  workflowRef:\n    name: pipeline\n"
		write(filepath.Join("tenants", tenant, "base", "pipeline.yaml"), docs)
		write(filepath.Join("tenants", tenant, "base", "kustomization.yaml"), "resources:\n- pipeline.yaml\n")
		for _, c := range []string{"eu", "us"} {
			write(filepath.Join("tenants", tenant, c, "kustomization.yaml"), "resources:\n- ../base\nnameSuffix: -"+c+"\n")
			targets = append(targets, Target{Tenant: tenant, Cluster: c})
		}
	}
	return root, targets
}

// scaleRepo writes the repository of BenchmarkTenantReconcilerScale:
// tenants each with a base of 10 Stages and 10 ConfigMaps and two
// per-cluster overlays, one and two, that include it with a name suffix;
// 20 objects per target.
func scaleRepo(b *testing.B, tenants int) (string, []Target) {
	b.Helper()
	root := b.TempDir()
	write := func(rel, content string) { writeBenchFile(b, root, rel, content) }
	var targets []Target
	for i := range tenants {
		tenant := fmt.Sprintf("scale%d", i)
		var objs strings.Builder
		for j := range 10 {
			fmt.Fprintf(&objs, "---\napiVersion: cyclone.dev/v1alpha1\nkind: Stage\nmetadata:\n  name: stage%d\nspec:\n  pod:\n    spec:\n      containers:\n      - name: main\n        image: golang:1.27\n        command: [go, test, ./pkg%d/...]\n", j, j)
			fmt.Fprintf(&objs, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config%d\ndata:\n  key: value%d\n", j, j)
		}
		write(filepath.Join("tenants", tenant, "base", "objects.yaml"), objs.String())
		write(filepath.Join("tenants", tenant, "base", "kustomization.yaml"), "resources:\n- objects.yaml\n")
		for _, c := range []string{"one", "two"} {
			write(filepath.Join("tenants", tenant, c, "kustomization.yaml"), "resources:\n- ../base\nnameSuffix: -"+c+"\n")
			targets = append(targets, Target{Tenant: tenant, Cluster: c})
		}
	}
	return root, targets
}

// BenchmarkRender renders 100 tenants × 2 clusters × 30 objects:
//
//   - cold: every target built (no cache),
//   - parallel: the same, from GOMAXPROCS goroutines,
//   - one-tenant-changed: a warm cache, one tenant's file changed, every
//     target rendered again;
//
// then the repository of BenchmarkTenantReconcilerScale, 500 tenants × a
// base and two overlays × 20 objects, every target once with a fresh
// Renderer, as a controller's first convergence does:
//
//   - scale/no-file-cache: without the file cache,
//   - scale/sequential: one target at a time,
//   - scale/parallel: from 4 goroutines,
//   - scale/parallel-exclusive: the same with remote bases allowed,
//     whose kustomize builds run one at a time (see kustomizeMu).
//
// builds/target counts kustomize builds, checks/target the files whose
// YAML gyre checked (the rest came from the file cache),
// shared-validations/target the objects whose schema validation another
// object's served, cache-KiB what the file cache held at the end,
// cpu-ms/target the process's CPU time (garbage collection included).
func BenchmarkRender(b *testing.B) {
	const tenants, objects = 100, 30
	root, targets := benchRepo(b, tenants, objects)
	ctx := context.Background()
	total := float64(len(targets) * objects)

	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, t := range targets {
				res, err := Render(ctx, root, t, Options{})
				if err != nil || len(res.Errors) > 0 || len(res.Objects) != objects {
					b.Fatalf("%s: %v %v (%d objects)", t, err, res.Errors, len(res.Objects))
				}
			}
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	})

	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var wg sync.WaitGroup
			work := make(chan Target)
			for range 8 {
				wg.Go(func() {
					for t := range work {
						if _, err := Render(ctx, root, t, Options{}); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for _, t := range targets {
				work <- t
			}
			close(work)
			wg.Wait()
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	})

	b.Run("one-tenant-changed", func(b *testing.B) {
		r := NewRenderer()
		for _, t := range targets {
			if _, err := r.Render(ctx, root, t, Options{}); err != nil {
				b.Fatal(err)
			}
		}
		changed := filepath.Join(root, "tenants", "team-042", "eu", "kustomization.yaml")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			b.StopTimer()
			if err := os.WriteFile(changed, fmt.Appendf(nil, "resources:\n- ../base\nnameSuffix: -eu\ncommonAnnotations:\n  bench: \"%d\"\n", i), 0o644); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			for _, t := range targets {
				if _, err := r.Render(ctx, root, t, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(r.builds.Load()-int64(len(targets)))/float64(b.N), "builds/op")
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	})
	scaleRoot, scaleTargets := scaleRepo(b, 500)
	scaleTotal := float64(len(scaleTargets) * 20)
	for _, bc := range []struct {
		name    string
		workers int
		files   bool
		remote  bool
	}{
		{"scale/no-file-cache", 1, false, false},
		{"scale/sequential", 1, true, false},
		{"scale/parallel", 4, true, false},
		{"scale/parallel-exclusive", 4, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var builds, checks, shared, held int64
			cpu := cpuTime(b)
			for b.Loop() {
				r := NewRenderer()
				if !bc.files {
					r.files = nil
				}
				var wg sync.WaitGroup
				work := make(chan Target)
				for range bc.workers {
					wg.Go(func() {
						for t := range work {
							res, err := r.Render(ctx, scaleRoot, t, Options{Revision: "main@sha1:1", AllowRemoteBases: bc.remote})
							if err != nil || len(res.Errors) > 0 || len(res.Objects) != 20 {
								b.Errorf("%s: %v %v (%d objects)", t, err, res.Errors, len(res.Objects))
							}
						}
					})
				}
				for _, t := range scaleTargets {
					work <- t
				}
				close(work)
				wg.Wait()
				builds += r.builds.Load()
				checks += r.checks.Load()
				if r.files != nil {
					shared += r.files.validationHits.Load()
					held = r.files.held()
				}
			}
			cpu = cpuTime(b) - cpu
			n := float64(b.N * len(scaleTargets))
			b.ReportMetric(float64(cpu.Microseconds())/1000/n, "cpu-ms/target")
			b.ReportMetric(float64(builds)/n, "builds/target")
			b.ReportMetric(float64(checks)/n, "checks/target")
			b.ReportMetric(float64(shared)/n, "shared-validations/target")
			b.ReportMetric(float64(held)/1024, "cache-KiB")
			b.ReportMetric(scaleTotal*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}

// BenchmarkRenderConcurrency measures what running kustomize builds
// concurrently gains over running them one at a time (see kustomizeMu):
// the repository of BenchmarkTenantReconcilerScale is rendered by 4
// goroutines twice, once with concurrent builds and once with builds one
// at a time (remote bases allowed), in 20 chunks of 50 targets whose
// order alternates, so that other work on a shared machine weighs on
// both alike. concurrent/exclusive is the ratio of their speeds.
func BenchmarkRenderConcurrency(b *testing.B) {
	ctx := context.Background()
	root, targets := scaleRepo(b, 500)
	render := func(r *Renderer, ts []Target, remote bool) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		work := make(chan Target)
		for range 4 {
			wg.Go(func() {
				for t := range work {
					res, err := r.Render(ctx, root, t, Options{Revision: "main@sha1:1", AllowRemoteBases: remote})
					if err != nil || len(res.Errors) > 0 {
						b.Errorf("%s: %v %v", t, err, res.Errors)
					}
				}
			})
		}
		for _, t := range ts {
			work <- t
		}
		close(work)
		wg.Wait()
		return time.Since(start)
	}
	var concurrent, exclusive time.Duration
	for b.Loop() {
		rc, re := NewRenderer(), NewRenderer()
		for i := 0; i < len(targets); i += 50 {
			chunk := targets[i:min(i+50, len(targets))]
			if i/50%2 == 0 {
				concurrent += render(rc, chunk, false)
				exclusive += render(re, chunk, true)
			} else {
				exclusive += render(re, chunk, true)
				concurrent += render(rc, chunk, false)
			}
		}
	}
	objects := float64(b.N * len(targets) * 20)
	b.ReportMetric(objects/concurrent.Seconds(), "concurrent-objects/s")
	b.ReportMetric(objects/exclusive.Seconds(), "exclusive-objects/s")
	b.ReportMetric(exclusive.Seconds()/concurrent.Seconds(), "concurrent/exclusive")
}

// cpuTime is the CPU time the process used so far: on a machine shared
// with other work, a steadier measure of work than wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBenchFile writes content to rel under root, making its directories.
func writeBenchFile(b *testing.B, root, rel, content string) {
	b.Helper()
	if err := fsutil.WriteFile(filepath.Join(root, rel), []byte(content)); err != nil {
		b.Fatal(err)
	}
}
