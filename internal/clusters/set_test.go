package clusters_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/clusters"
)

// TestSet is a unit test of the connection cache alone: a fake client
// stands in for the API server that holds the ExecutionCluster and its
// Secret.
func TestSet(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(cyclonev1alpha1.AddToScheme(scheme)).To(Succeed())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "creds", Name: "far"}, Data: map[string][]byte{"value": kubeconfigV1("    server: https://far.example:6443\n", "    token: t\n")}}
	ec := &cyclonev1alpha1.ExecutionCluster{ObjectMeta: metav1.ObjectMeta{Name: "far"},
		Spec: cyclonev1alpha1.ExecutionClusterSpec{SecretRef: &cyclonev1alpha1.SecretKeyReference{Namespace: "creds", Name: "far"}}}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(secret, ec).Build()
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var made, closed []string
	set := &clusters.Set[string]{
		Reader: reader,
		Connect: func(_ context.Context, name string, cfg *rest.Config) (string, error) {
			made = append(made, cfg.Host)
			return name + "@" + cfg.Host, nil
		},
		Close:   func(c string) { closed = append(closed, c) },
		Recheck: time.Minute,
		Clock:   clock,
	}

	c, err := set.Get(ctx, "far")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c).To(Equal("far@https://far.example:6443"))
	_, err = set.Get(ctx, "far")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(made).To(HaveLen(1), "a second Get within Recheck reuses the connection")

	secret.Data["value"] = kubeconfigV1("    server: https://far-2.example:6443\n", "    token: t\n")
	g.Expect(reader.Update(ctx, secret)).To(Succeed())
	_, _ = set.Get(ctx, "far")
	g.Expect(made).To(HaveLen(1), "new credentials are not read before Recheck is over")
	clock.SetTime(clock.Now().Add(time.Minute))
	c, err = set.Get(ctx, "far")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c).To(Equal("far@https://far-2.example:6443"), "new credentials reconnect")
	g.Expect(closed).To(Equal([]string{"far@https://far.example:6443"}))

	set.Forget("far")
	g.Expect(closed).To(HaveLen(2))
	_, err = set.Get(ctx, "near")
	g.Expect(errors.Is(err, clusters.ErrNotFound)).To(BeTrue())
}
