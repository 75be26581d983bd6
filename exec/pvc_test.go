package exec

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// TestEngine_tenantPVC: a run whose tenant PVC is missing or can never
// bind fails before any stage starts, naming the PVC, instead of leaving
// its Pods Pending for good; a PVC that may still bind lets it go ahead.
func TestEngine_tenantPVC(t *testing.T) {
	requireCluster(t)
	tests := []struct {
		name string
		// class is the PVC's storageClassName; no PVC when absent is set.
		class  *string
		absent bool
		// defaultClass makes a default StorageClass for the test, and
		// volume a PersistentVolume of no class reserved for the PVC.
		defaultClass, volume bool
		// message is the failed run's message, "" when the run goes ahead;
		// %[1]s is the tenant.
		message string
	}{{
		name:    "A run of a tenant without its PVC fails after the grace period, naming the PVC.",
		absent:  true,
		message: "tenant PVC cyclone-pvc-%[1]s not found in namespace cyclone-%[1]s-worker 2s after the run was created; gyre provisions it with the Tenant (spec.storage)",
	}, {
		name:    "A run whose PVC names a StorageClass that does not exist fails after the grace period, naming the class.",
		class:   ptr.To("no-such-class"),
		message: `tenant PVC cyclone-pvc-%[1]s in namespace cyclone-%[1]s-worker cannot bind: StorageClass "no-such-class" not found`,
	}, {
		name: "A run whose PVC names no StorageClass on a cluster without a default one fails after the grace period.",
		message: "tenant PVC cyclone-pvc-%[1]s in namespace cyclone-%[1]s-worker cannot bind: it names no StorageClass, the cluster has no default one and no PersistentVolume without a class is available; " +
			"set spec.storage.storageClassName on the Tenant, mark a StorageClass as the default or make a PersistentVolume",
	}, {
		name:   "A run whose PVC names no StorageClass, on a cluster without a default one, goes ahead when a PersistentVolume of no class awaits it.",
		volume: true,
	}, {
		name:         "A run whose Pending PVC the cluster's default StorageClass will bind goes ahead.",
		defaultClass: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			if tt.defaultClass {
				sc := &storagev1.StorageClass{
					ObjectMeta:  metav1.ObjectMeta{GenerateName: "default-", Annotations: map[string]string{defaultClassAnnotation: "true"}},
					Provisioner: "example.com/none",
				}
				g.Expect(k8s.Create(bg, sc)).To(Succeed())
				t.Cleanup(func() { _ = k8s.Delete(bg, sc) })
			}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cyclone-t"}}
			g.Expect(k8s.Create(bg, ns)).To(Succeed())
			t.Cleanup(func() { _ = k8s.Delete(bg, ns) })
			tenant := Tenant(ns.Name)
			createTenant(t, tenant)
			worker := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cyclone-" + tenant + "-worker"}}
			g.Expect(k8s.Create(bg, worker)).To(Succeed())
			t.Cleanup(func() { _ = k8s.Delete(bg, worker) })
			if tt.volume {
				pv := reservedPV(tenant, corev1.ReadWriteOnce)
				g.Expect(k8s.Create(bg, pv)).To(Succeed())
				t.Cleanup(func() { _ = k8s.Delete(bg, pv) })
			}
			if !tt.absent {
				g.Expect(k8s.Create(bg, &corev1.PersistentVolumeClaim{
					ObjectMeta: metav1.ObjectMeta{Name: "cyclone-pvc-" + tenant, Namespace: worker.Name},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						StorageClassName: tt.class,
						Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
					},
				})).To(Succeed())
			}
			cfg := testConfig()
			cfg.MissingGracePeriod = 2 * time.Second
			_, stop := startEngine(t, env.Config, cfg)
			defer stop()
			createWorkflow(t, ns.Name, "wf", []*cyclonev1alpha1.Stage{stage(ns.Name, "build", forever())}, items("build"))
			createRun(t, ns.Name, "run1", "wf")

			if tt.message == "" {
				g.Eventually(func(g Gomega) {
					run := getRun(g, ns.Name, "run1")
					g.Expect(run.Status.Stages).To(HaveKey("build"))
					g.Expect(run.Status.Stages["build"].Pod).NotTo(BeNil(), "status: %+v", run.Status)
				}).WithTimeout(20 * time.Second).Should(Succeed())
				g.Expect(getRun(g, ns.Name, "run1").Status.Overall.Phase).NotTo(Equal(cyclonev1alpha1.StatusFailed))
				return
			}
			g.Eventually(func(g Gomega) {
				run := getRun(g, ns.Name, "run1")
				g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed), "status: %+v", run.Status)
				g.Expect(run.Status.Overall.Reason).To(Equal(ReasonPVCUnavailable))
				g.Expect(run.Status.Overall.Message).To(Equal(fmt.Sprintf(tt.message, tenant)))
				g.Expect(run.Status.Cleaned).To(BeTrue())
			}).WithTimeout(20 * time.Second).Should(Succeed())
		})
	}
}
