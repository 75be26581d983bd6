package reconciler

import (
	"context"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// releasePVCs drops the kubernetes.io/pvc-protection finalizer of the
// deleted PVCs in namespace ns, as kube-controller-manager's
// pvc-protection controller does once no Pod uses them. The test control
// plane does not run that controller, and every tenant's worker namespace
// holds a PVC, which would keep the namespace Terminating.
func releasePVCs(g Gomega, c client.Client, ns string) {
	ctx := context.Background()
	var pvcs corev1.PersistentVolumeClaimList
	g.Expect(c.List(ctx, &pvcs, client.InNamespace(ns))).To(Succeed())
	for i := range pvcs.Items {
		pvc := &pvcs.Items[i]
		if pvc.DeletionTimestamp.IsZero() || len(pvc.Finalizers) == 0 {
			continue
		}
		patch := client.MergeFrom(pvc.DeepCopy())
		pvc.Finalizers = nil
		g.Expect(client.IgnoreNotFound(c.Patch(ctx, pvc, patch))).To(Succeed())
	}
}
