package config_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

// TestRunFinalizerPolicy: with config/admission installed, every
// WorkflowRun is created with the engine's finalizer, next to any it was
// created with, and the finalizer goes when it is removed, so that the
// engine can let a deleted run go.
func TestRunFinalizerPolicy(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(testcluster.InstallRunFinalizer(ctx, cluster.Config)).To(Succeed())
	scheme, err := mgrconfig.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	newRun := func(name string, finalizers ...string) *cyclonev1alpha1.WorkflowRun {
		return &cyclonev1alpha1.WorkflowRun{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault, Finalizers: finalizers},
			Spec:       cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: "build"}},
		}
	}

	t.Run("A run created without finalizers has the engine's.", func(t *testing.T) {
		g := NewWithT(t)
		run := newRun("plain")
		g.Expect(c.Create(ctx, run)).To(Succeed())
		g.Expect(run.Finalizers).To(ConsistOf(convention.RunFinalizer))
	})
	t.Run("A run created with a finalizer of its own keeps it, and has the engine's too.", func(t *testing.T) {
		g := NewWithT(t)
		run := newRun("own", "example.com/keep")
		g.Expect(c.Create(ctx, run)).To(Succeed())
		g.Expect(run.Finalizers).To(ConsistOf("example.com/keep", convention.RunFinalizer))
	})
	t.Run("A deleted run goes once its finalizers are removed: the policy adds nothing back.", func(t *testing.T) {
		g := NewWithT(t)
		for _, name := range []string{"plain", "own"} {
			run := &cyclonev1alpha1.WorkflowRun{}
			g.Expect(c.Get(ctx, types.NamespacedName{Namespace: metav1.NamespaceDefault, Name: name}, run)).To(Succeed())
			g.Expect(c.Delete(ctx, run)).To(Succeed())
			g.Expect(c.Patch(ctx, run, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
			g.Eventually(func() bool {
				return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(run), run))
			}).Should(BeTrue(), "run %s is gone", name)
		}
	})
}
