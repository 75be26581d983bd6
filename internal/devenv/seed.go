package devenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// seed creates what a platform team would: the Repository, the Tenants,
// and, standing in for a storage provisioner, one PersistentVolume per
// tenant for its PVC to bind to. Objects already there are left alone.
func seed(ctx context.Context, c client.Client, url, stateDir string) error {
	objs := []client.Object{&gyrev1alpha1.Repository{
		ObjectMeta: metav1.ObjectMeta{Name: "pipelines"},
		Spec: gyrev1alpha1.RepositorySpec{
			URL:      url,
			Ref:      &gyrev1alpha1.GitRef{Branch: "main"},
			Interval: &metav1.Duration{Duration: 3 * time.Second},
		},
	}}
	for i, t := range devTenants {
		// As local-path and NFS provisioners make them: writable to all,
		// since a hostPath volume ignores the Pods' fsGroup.
		volume := filepath.Join(stateDir, "volumes", fmt.Sprint(i))
		if err := os.MkdirAll(volume, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(volume, 0o777); err != nil {
			return err
		}
		tenant := &gyrev1alpha1.Tenant{
			ObjectMeta: metav1.ObjectMeta{Name: t.name},
			Spec: gyrev1alpha1.TenantSpec{
				RepositoryRef: gyrev1alpha1.ObjectReference{Name: "pipelines"},
				// A count quota only: a memory or CPU quota would make every
				// stage Pod name its requests.
				Quota:   corev1.ResourceList{corev1.ResourcePods: resource.MustParse("50")},
				Storage: &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
			},
		}
		if t.name == runTenant {
			// The example pipeline builds its image with the privileged
			// Docker daemon, which only a privileged Tenant may run.
			tenant.Spec.PodSecurity = podsecurity.Privileged
		}
		for _, cl := range t.clusters {
			tenant.Spec.Clusters = append(tenant.Spec.Clusters, gyrev1alpha1.TenantCluster{Name: cl})
		}
		objs = append(objs, tenant, &corev1.PersistentVolume{
			// Any tenant's PVC may bind to any of these: they are alike.
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gyre-dev-%d", i)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: volume},
				},
			},
		})
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	// The Git server listens on a new port at every start.
	repo := &gyrev1alpha1.Repository{}
	if err := c.Get(ctx, client.ObjectKey{Name: "pipelines"}, repo); err != nil {
		return err
	}
	if repo.Spec.URL != url {
		patch := client.MergeFrom(repo.DeepCopy())
		repo.Spec.URL = url
		if err := c.Patch(ctx, repo, patch); err != nil {
			return fmt.Errorf("point Repository pipelines at %s: %w", url, err)
		}
	}
	return nil
}

// forgetOtherNodes deletes the Nodes of the kind gyre dev does not run
// this time, which a state directory keeps from an earlier start: nothing
// runs their Pods any more, yet the scheduler would still place Pods
// there.
func forgetOtherNodes(ctx context.Context, c client.Client, node string) error {
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return err
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		kwok := n.Annotations["kwok.x-k8s.io/node"] == "fake"
		if kwok == (node == NodeKwok) {
			continue
		}
		if err := c.Delete(ctx, n); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete node %s of an earlier gyre dev: %w", n.Name, err)
		}
	}
	return nil
}
