package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// TestImport_endToEnd moves a Cyclone tenant to gyre the way the README's
// walk-through does: `gyre import` from the cluster Cyclone runs on, the
// result pushed to a Git server, `kubectl apply -k gyre` on a cluster
// running gyre's controllers, and the by-hand Secrets applied once the
// Tenant is Ready. The Tenant must come up Ready with the same objects,
// and the same specs, as Cyclone had.
func TestImport_endToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane; -short starts none")
	}
	ctrl.SetLogger(logr.Discard())
	for _, tc := range []struct {
		name    string
		inPlace bool
	}{
		{name: "On a new cluster the Tenant is Ready with Cyclone's objects and the by-hand files apply."},
		{name: "On Cyclone's own cluster the Tenant is Ready with the same objects once the namespace is adopted and Cyclone's objects are deleted but not their runs.", inPlace: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			// In place, the garbage collector shows whether the runs
			// outlive their Workflows.
			cyclone, err := testcluster.Start(ctx, testcluster.Options{ControllerManager: tc.inPlace})
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(func() { _ = cyclone.Stop() })
			src, err := client.New(cyclone.Config, client.Options{})
			g.Expect(err).NotTo(HaveOccurred())
			live := loadCycloneTenant(t, src, "shop")

			root := t.TempDir()
			repo := gitserver.NewRepo(t, root, "pipelines.git")
			srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(srv.Close)
			url := srv.URL + "/pipelines.git"

			out := filepath.Join(t.TempDir(), "pipelines")
			start := time.Now()
			stdout, stderr, code := execute(t, "import", "--kubeconfig", cyclone.Kubeconfig, "--tenant", "shop", "--out", out, "--repo-url", url)
			t.Logf("gyre import took %s\nstdout:\n%s\nstderr:\n%s", time.Since(start), stdout, stderr)
			g.Expect(code).To(Equal(0))
			for _, secret := range []string{"glpat-s3cr3t-token-value", "sqa-s3cr3t-sonar"} {
				g.Expect(stdout + stderr).NotTo(ContainSubstring(secret))
			}
			if !tc.inPlace {
				golden(t, "import/stdout.txt", strings.NewReplacer(out, "OUT", url, "URL").Replace(stdout))
			}
			g.Expect(stderr).To(ContainSubstring("Reading tenant shop (1 of 1) from namespace cyclone-shop\n"))
			g.Expect(stdout).To(ContainSubstring("  tenant shop: 8 objects (Project 1, Resource 2, Stage 2, Workflow 1, WorkflowTrigger 2) in tenants/shop/base; 1 object (Stage 1) left out in left-out/shop; 3 files to apply by hand in by-hand/\n"))
			g.Expect(stdout).To(MatchRegexp(`(?m)^Not carried over as it was \(\d+\):\n`))
			g.Expect(stdout).To(ContainSubstring("  left out  tenant shop: Stage/node-debug: gyre's render refuses it: spec.pod.spec: violates PodSecurity \"baseline\""))
			g.Expect(stdout).To(ContainSubstring("  left out  tenant shop: 2 WorkflowRuns are run history"))

			// What `gyre build` makes of it is what gyre will apply.
			built, stderr, code := execute(t, "build", out)
			g.Expect(code).To(Equal(0), stderr)
			g.Expect(built).To(ContainSubstring("# target: shop/default (tenants/shop/base)\n"))
			// The first step the written README gives: checked against
			// the Tenants the import wrote.
			_, stderr, code = execute(t, "validate", "--tenants", filepath.Join(out, "gyre", "tenants.yaml"), out)
			g.Expect(code).To(Equal(0), stderr)

			repo.CopyDir(out)
			repo.Commit("import tenant shop from Cyclone")
			repo.Push()

			gyre := cyclone
			if tc.inPlace {
				// Cyclone is stopped. gyre adopts the namespace and makes
				// the objects anew from Git: adopted, they would keep the
				// fields the import dropped, which Cyclone's manager set.
				kubectl(t, gyre.Kubeconfig, "annotate", "namespace", "cyclone-shop", "gyre.dev/adopt=true")
				kubectl(t, gyre.Kubeconfig, "-n", "cyclone-shop", "delete", "projects,resources,stages,workflows,workflowtriggers", "--all", "--cascade=orphan")
			} else {
				gyre, err = testcluster.Start(ctx, testcluster.Options{})
				g.Expect(err).NotTo(HaveOccurred())
				t.Cleanup(func() { _ = gyre.Stop() })
			}
			startControllers(t, ctx, gyre)

			start = time.Now()
			kubectl(t, gyre.Kubeconfig, "apply", "-k", filepath.Join(out, "gyre"))
			scheme, err := mgrconfig.NewScheme()
			g.Expect(err).NotTo(HaveOccurred())
			dst, err := client.New(gyre.Config, client.Options{Scheme: scheme})
			g.Expect(err).NotTo(HaveOccurred())
			g.Eventually(func(g Gomega) {
				var tn gyrev1alpha1.Tenant
				g.Expect(dst.Get(ctx, client.ObjectKey{Name: "shop"}, &tn)).To(Succeed())
				ready := apimeta.FindStatusCondition(tn.Status.Conditions, "Ready")
				g.Expect(ready).NotTo(BeNil())
				g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
				g.Expect(tn.Status.Objects).To(Equal(8))
			}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
			t.Logf("Tenant shop Ready %s after kubectl apply -k gyre", time.Since(start))

			for id, orig := range live {
				if orig.GroupVersionKind().Group != "cyclone.dev" || id == "Stage/node-debug" || strings.HasPrefix(id, "WorkflowRun/") {
					continue
				}
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(orig.GroupVersionKind())
				g.Expect(dst.Get(ctx, client.ObjectKey{Namespace: "cyclone-shop", Name: orig.GetName()}, got)).To(Succeed(), "%s is applied", id)
				want := orig.DeepCopy().Object["spec"].(map[string]any)
				if id == "WorkflowTrigger/shop-api-nightly" {
					g.Expect(unstructured.SetNestedField(want, "cyclone-shop-worker", "executionContext", "namespace")).To(Succeed())
					unstructured.RemoveNestedField(want, "executionContext", "cluster")
				}
				g.Expect(got.Object["spec"]).To(Equal(want), "%s has the spec it had in Cyclone", id)
				g.Expect(got.GetLabels()).To(HaveKeyWithValue(convention.TenantLabel, "shop"), "%s is gyre's", id)
			}
			if tc.inPlace {
				// The run history is still there, owned by nothing.
				var run unstructured.Unstructured
				run.SetAPIVersion("cyclone.dev/v1alpha1")
				run.SetKind("WorkflowRun")
				g.Eventually(func(g Gomega) {
					g.Expect(dst.Get(ctx, client.ObjectKey{Namespace: "cyclone-shop", Name: "shop-api-ci-manual-1"}, &run)).To(Succeed())
					g.Expect(run.GetOwnerReferences()).To(BeEmpty(), "the garbage collector orphans the run")
				}).WithTimeout(30 * time.Second).Should(Succeed())
				return
			}

			// The by-hand files, filled in as a user would, apply into the
			// namespaces gyre made.
			filled := t.TempDir()
			for _, f := range []string{"cyclone-shop/secret-shop-gitlab.yaml", "cyclone-shop-worker/secret-registry-pull.yaml", "cyclone-shop-worker/configmap-build-settings.yaml"} {
				b, err := os.ReadFile(filepath.Join(out, "by-hand", f))
				g.Expect(err).NotTo(HaveOccurred())
				value := "filled-in"
				if strings.Contains(f, "registry-pull") {
					value = `'{"auths":{}}'`
				}
				g.Expect(os.WriteFile(filepath.Join(filled, filepath.Base(f)), []byte(strings.ReplaceAll(string(b), "FILL-ME", value)), 0o644)).To(Succeed())
			}
			kubectl(t, gyre.Kubeconfig, "apply", "-f", filled)
			var hook unstructured.Unstructured
			hook.SetAPIVersion("v1")
			hook.SetKind("Secret")
			g.Expect(dst.Get(ctx, client.ObjectKey{Namespace: "cyclone-shop", Name: "shop-gitlab"}, &hook)).To(Succeed())
			g.Expect(hook.Object["data"]).To(HaveKey("webhookSecret"))
		})
	}
}

// startControllers runs gyre's controllers against cluster, built as
// `gyre controller` builds them, until the test ends.
func startControllers(t *testing.T, ctx context.Context, cluster *testcluster.Cluster) {
	t.Helper()
	g := NewWithT(t)
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	o := manager.Options{Options: mgrconfig.Options{MetricsAddr: "0", ProbeAddr: "0"}, ArtifactDir: t.TempDir(), LogDir: t.TempDir()}
	opts := o.Manager(scheme)
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(cluster.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(manager.Setup(mgr, o)).To(Succeed())
	mgrCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stop()
		g.Expect(<-done).To(Succeed())
	})
}

// kubectl runs bin/kubectl against kubeconfig and fails the test when it
// fails.
func kubectl(t *testing.T, kubeconfig string, args ...string) {
	t.Helper()
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "bin", "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// loadCycloneTenant creates the Cyclone tenant fixture of
// internal/cycloneimport as tenant name and returns its objects as the
// API server serves them, by Kind/name.
func loadCycloneTenant(t *testing.T, c client.Client, name string) map[string]*unstructured.Unstructured {
	t.Helper()
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "cycloneimport", "testdata", "cyclone-tenant.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(strings.ReplaceAll(string(b), "TENANT", name)), 4096)
	live := map[string]*unstructured.Unstructured{}
	var workflow *unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		err := dec.Decode(&o.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		g.Expect(err).NotTo(HaveOccurred())
		if o.GetKind() == "WorkflowRun" {
			// As Cyclone's controller leaves them: owned by their
			// Workflow, which the file has first.
			o.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "cyclone.dev/v1alpha1", Kind: "Workflow", Name: workflow.GetName(), UID: workflow.GetUID()}})
		}
		g.Expect(c.Create(context.Background(), o)).To(Succeed())
		if o.GetKind() == "Workflow" {
			workflow = o
		}
		live[o.GetKind()+"/"+o.GetName()] = o
	}
	return live
}
