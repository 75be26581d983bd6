package reconciler

import (
	"context"
	"os"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

// floorWatchesEnv, set to any value, has each replay of benchTenants run
// with the watches gyre's convergence keeps open: the metadata of every
// kind it applies or provisions, selected by the (renamed) tenant label,
// and whole Tenants. The API server then delivers each of the replay's
// writes to a watcher, as it delivers gyre's to gyre, and the replay's
// process decodes them, as gyre's does.
const floorWatchesEnv = "GYRE_BENCH_FLOOR_WATCHES"

// watchedKinds are the kinds whose metadata gyre's convergence of the
// benchmark's Tenants watches.
var watchedKinds = []metav1.TypeMeta{
	{APIVersion: "v1", Kind: "ConfigMap"},
	{APIVersion: cyclonev1alpha1.GroupVersion.String(), Kind: "Stage"},
	{APIVersion: "v1", Kind: "Namespace"},
	{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
	{APIVersion: "v1", Kind: "ServiceAccount"},
	{APIVersion: "v1", Kind: "ResourceQuota"},
	{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
	{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
	{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
}

// startFloorWatches opens, when floorWatchesEnv asks for them, the
// watches of floorWatchesEnv, synced, and returns what closes them.
func startFloorWatches(b *testing.B, g *WithT) func() {
	if os.Getenv(floorWatchesEnv) == "" {
		return func() {}
	}
	raw, err := labels.NewRequirement(rawTenantLabel, selection.Exists, nil)
	g.Expect(err).NotTo(HaveOccurred())
	objects, err := cache.New(testEnv.Config, cache.Options{
		Scheme:                       testEnv.Scheme,
		DefaultLabelSelector:         labels.NewSelector().Add(*raw),
		DefaultTransform:             dropFieldSets,
		DefaultUnsafeDisableDeepCopy: ptr.To(true),
	})
	g.Expect(err).NotTo(HaveOccurred())
	tenants, err := cache.New(testEnv.Config, cache.Options{Scheme: testEnv.Scheme, DefaultTransform: cache.TransformStripManagedFields()})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, c := range []cache.Cache{objects, tenants} {
		go func() { done <- c.Start(ctx) }()
	}
	for _, tm := range watchedKinds {
		m := &metav1.PartialObjectMetadata{TypeMeta: tm}
		_, err := objects.GetInformer(ctx, m)
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, err = tenants.GetInformer(ctx, &gyrev1alpha1.Tenant{})
	g.Expect(err).NotTo(HaveOccurred())
	b.Logf("replay beside %d watches", len(watchedKinds)+1)
	return func() {
		cancel()
		for range 2 {
			g.Expect(<-done).To(Succeed())
		}
	}
}
