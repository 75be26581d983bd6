package testcluster

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NewNamespace creates a namespace named prefix plus a random suffix for
// one test, and deletes it when the test ends: tests of a suite share one
// Cluster, and a namespace each keeps them apart. It skips the test in
// -short mode, where there is no Cluster.
func NewNamespace(t testing.TB, c client.Client, prefix string) string {
	t.Helper()
	Require(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	DeleteAtCleanup(t, c, ns)
	return ns.Name
}

// DeleteAtCleanup deletes obj when the test ends, so that cluster-scoped
// objects do not outlive it; one already gone is fine.
func DeleteAtCleanup(t testing.TB, c client.Client, obj client.Object) {
	t.Cleanup(func() { _ = client.IgnoreNotFound(c.Delete(context.Background(), obj)) })
}

// StartManager runs mgr until the test ends, and fails the test when the
// manager stops with an error.
func StartManager(t testing.TB, mgr ctrl.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}
