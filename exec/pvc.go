package exec

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// ReasonPVCUnavailable: the tenant PVC that every stage Pod of the run
// mounts does not exist or can never bind, so no stage could start.
const ReasonPVCUnavailable = "PVCUnavailable"

// defaultClassAnnotation marks the cluster's default StorageClass.
const defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

// pvcError says the tenant PVC cannot serve the run.
type pvcError struct{ msg string }

func (e *pvcError) Error() string { return e.msg }

// pvcBoundFor is how long a tenant PVC found bound is taken to be bound
// still, without a look: a burst of runs of one tenant costs one read of
// its PVC, not one each. A PVC deleted meanwhile shows in its runs' Pods,
// Pending for it.
const pvcBoundFor = 30 * time.Second

// checkPVC looks, before a run starts, at the tenant PVC its stage Pods
// will mount. A Pod whose claim is missing or can never bind sits Pending
// with no end, and the run with it; failing the run at once, naming the
// PVC, says what to fix. Only what will not bind as the cluster is fails:
// a Lost PVC at once; after the grace period (tenant provisioning, a
// StorageClass or a PersistentVolume may be moments behind the run), a
// missing one, and a Pending one whose StorageClass does not exist or that
// names none where the cluster has no default and has no PersistentVolume
// of no class to offer. A Pending PVC
// of an existing class may be waiting for its first consumer, as
// WaitForFirstConsumer classes do, and one of class "" for an operator's
// PersistentVolume; those go ahead. The PVC is read from the API server:
// the engine caches no PVC.
func (r *Engine) checkPVC(ctx context.Context, s *scope) error {
	t := s.target
	bound := clusterName(s.run) + "/" + t.namespace + "/" + t.pvc
	if at, ok := r.boundPVCs.Load(bound); ok && s.now.Sub(at.(time.Time)) < pvcBoundFor {
		return nil
	}
	where := fmt.Sprintf("tenant PVC %s in namespace %s", t.pvc, t.namespace)
	pvc := &corev1.PersistentVolumeClaim{}
	if err := t.live.Get(ctx, types.NamespacedName{Namespace: t.namespace, Name: t.pvc}, pvc); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get %s: %w", where, err)
		}
		return r.missing(s, "tenant PVC", t.pvc, t.namespace, func(msg string) error {
			return &pvcError{msg: msg + "; gyre provisions it with the Tenant (spec.storage)"}
		})
	}
	switch {
	case pvc.Status.Phase == corev1.ClaimLost:
		return &pvcError{msg: where + " lost its PersistentVolume " + pvc.Spec.VolumeName}
	case pvc.Status.Phase == corev1.ClaimBound || pvc.Spec.VolumeName != "":
		r.boundPVCs.Store(bound, s.now)
		return nil
	}
	class := pvc.Spec.StorageClassName
	if class != nil && *class == "" {
		return nil // bound only to a PersistentVolume an operator makes
	}
	if class != nil {
		err := t.live.Get(ctx, types.NamespacedName{Name: *class}, &storagev1.StorageClass{})
		switch {
		case apierrors.IsNotFound(err):
			return r.unbound(s, fmt.Sprintf("%s cannot bind: StorageClass %q not found", where, *class))
		case apierrors.IsForbidden(err):
			return nil // gyre may not look: let the Pods tell
		case err != nil:
			return fmt.Errorf("get StorageClass %s of %s: %w", *class, where, err)
		}
		return nil
	}
	classes := &storagev1.StorageClassList{}
	if allowed, err := listAllowed(ctx, t.live, classes, "StorageClasses", where); !allowed || err != nil {
		return err
	}
	for _, c := range classes.Items {
		if c.Annotations[defaultClassAnnotation] == "true" {
			return nil
		}
	}
	// With no default class, a claim that names none binds as one of
	// class "" does: to a PersistentVolume of no class.
	volumes := &corev1.PersistentVolumeList{}
	if allowed, err := listAllowed(ctx, t.live, volumes, "PersistentVolumes", where); !allowed || err != nil {
		return err
	}
	for _, pv := range volumes.Items {
		if canBind(&pv, pvc) {
			return nil
		}
	}
	return r.unbound(s, where+" cannot bind: it names no StorageClass, the cluster has no default one and no PersistentVolume without a class is available; "+
		"set spec.storage.storageClassName on the Tenant, mark a StorageClass as the default or make a PersistentVolume")
}

// listAllowed lists into list what the PVC check needs to know; allowed
// is false when gyre's role does not grant the listing, and the run then
// goes ahead: its Pods tell whether the claim binds.
func listAllowed(ctx context.Context, live client.Reader, list client.ObjectList, what, where string) (allowed bool, err error) {
	err = live.List(ctx, list)
	switch {
	case apierrors.IsForbidden(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("list %s for %s: %w", what, where, err)
	}
	return true, nil
}

// canBind reports whether the PersistentVolume controller could bind pvc,
// which names no StorageClass on a cluster with no default one, to pv: pv
// has no class either, and is Available or reserved for pvc, with room
// and the access modes pvc asks for.
func canBind(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	if pv.Spec.StorageClassName != "" {
		return false
	}
	if ref := pv.Spec.ClaimRef; ref != nil {
		if ref.Namespace != pvc.Namespace || ref.Name != pvc.Name || (ref.UID != "" && ref.UID != pvc.UID) {
			return false
		}
	} else if pv.Status.Phase != corev1.VolumeAvailable {
		return false
	}
	for _, mode := range pvc.Spec.AccessModes {
		if !slices.Contains(pv.Spec.AccessModes, mode) {
			return false
		}
	}
	want, room := pvc.Spec.Resources.Requests[corev1.ResourceStorage], pv.Spec.Capacity[corev1.ResourceStorage]
	return room.Cmp(want) >= 0
}

// unbound is the error for a PVC that cannot bind as the cluster is: a
// wait within the grace period, in case the StorageClass or a matching
// PersistentVolume is being created with the tenant, then the failure.
func (r *Engine) unbound(s *scope, msg string) error {
	if s.now.Before(r.missingDeadline(s)) {
		return &waitingError{msg: "waiting: " + msg}
	}
	return &pvcError{msg: msg}
}

// waitOrFailOnPVC keeps a run Pending while its PVC is awaited and ends it
// when the PVC cannot serve it. Nothing of the run exists yet, so there is
// nothing to clean.
func (r *Engine) waitOrFailOnPVC(ctx context.Context, s *scope, err error) error {
	var waiting *waitingError
	var unusable *pvcError
	switch {
	case errors.As(err, &waiting):
		return r.waitRun(ctx, s, waiting.msg)
	case errors.As(err, &unusable):
		st := s.run.Status.DeepCopy()
		endStages(st, cyclonev1alpha1.StatusFailed, ReasonPVCUnavailable, unusable.msg, s.now)
		transition(&st.Overall, cyclonev1alpha1.StatusFailed, ReasonPVCUnavailable, unusable.msg, s.now)
		st.Cleaned = true
		return r.writeStatus(ctx, s.run, st)
	}
	return err
}
