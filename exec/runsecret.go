package exec

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
)

// annotationRunSecret on a stage Pod names the run Secret the engine
// made for it. A stage Pod without it has none: cleanup need not look for
// one while the Pod is there.
const annotationRunSecret = "gyre.dev/run-secret"

// ensureRunSecret creates a stage attempt's run Secret, adopting one of
// the same name that this run already created, and replacing one left
// behind by an earlier run of the same name.
func (r *Engine) ensureRunSecret(ctx context.Context, s *scope, sec *corev1.Secret) error {
	for range 2 {
		err := s.target.client.Create(ctx, sec.DeepCopy())
		if err == nil || !apierrors.IsAlreadyExists(err) {
			if err != nil {
				return fmt.Errorf("create secret %s/%s: %w", sec.Namespace, sec.Name, err)
			}
			return nil
		}
		existing := &corev1.Secret{}
		if err := s.target.live.Get(ctx, client.ObjectKeyFromObject(sec), existing); err != nil {
			return fmt.Errorf("get existing secret %s/%s: %w", sec.Namespace, sec.Name, err)
		}
		if existing.Labels[convention.LabelRunUID] == string(s.run.UID) {
			return nil // ours: adopt
		}
		if existing.Labels[convention.LabelManagedBy] != convention.ManagedByExec {
			return errors.New("secret " + sec.Namespace + "/" + sec.Name + " exists and does not belong to gyre")
		}
		if err := s.target.client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete stale secret %s/%s: %w", sec.Namespace, sec.Name, err)
		}
	}
	return fmt.Errorf("create secret %s/%s: it keeps coming back", sec.Namespace, sec.Name)
}

// deleteRunSecrets deletes the run Secrets of a run's stage attempts.
// gyre may neither list Secrets nor delete them by collection, so that it
// can never enumerate a cluster's Secrets: it deletes each by its name,
// which follows from the stage and the attempt, once the Secret's labels
// say it is this run's. The names are looked up podCreates at a time: a
// run's clean-up waits on one round trip, not one per stage.
//
// A round creates its Pods, and their Secrets, before it writes their
// attempts, and may hold that write back (see holdBack): a run deleted
// meanwhile has Secrets its status does not name. So every attempt its
// Workflow allows is looked up too, as well as every attempt its status
// records, but for an attempt whose Pod, among stagePods, says it has no
// run Secret (annotationRunSecret).
func (r *Engine) deleteRunSecrets(ctx context.Context, s *scope, stagePods map[string]*corev1.Pod) error {
	run := s.run
	attempts := map[string]int32{}
	for name, ss := range run.Status.Stages {
		attempts[name] = max(ss.Attempt, 1)
	}
	wf := &cyclonev1alpha1.Workflow{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: workflowName(run)}, wf)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get workflow %s: %w", workflowName(run), err)
	}
	for _, it := range wf.Spec.Stages {
		attempts[it.Name] = max(attempts[it.Name], it.Retries+1)
	}
	var names []string
	for stage, n := range attempts {
		for attempt := int32(1); attempt <= n; attempt++ {
			pod := convention.PodName(run.Name, stage, attempt)
			if p := stagePods[pod]; p != nil && p.Labels[convention.LabelRunUID] == string(run.UID) && !hasRunSecret(p) {
				continue
			}
			names = append(names, podbuild.RunSecretName(pod))
		}
	}
	slices.Sort(names)
	var eg errgroup.Group
	eg.SetLimit(podCreates)
	for _, name := range names {
		eg.Go(func() error { return r.deleteRunSecret(ctx, s, name) })
	}
	return eg.Wait()
}

// deleteRunSecret deletes the run Secret name if it is the run's.
func (r *Engine) deleteRunSecret(ctx context.Context, s *scope, name string) error {
	sec := &corev1.Secret{}
	err := s.target.live.Get(ctx, client.ObjectKey{Namespace: s.target.namespace, Name: name}, sec)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get secret %s/%s: %w", s.target.namespace, name, err)
	}
	if sec.Labels[convention.LabelManagedBy] != convention.ManagedByExec || sec.Labels[convention.LabelRunUID] != string(s.run.UID) {
		return nil
	}
	if err := s.target.client.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete secret %s/%s: %w", s.target.namespace, name, err)
	}
	return nil
}

// hasRunSecret reports whether the engine may have made a run Secret for
// pod: it says so, or, made before Pods said so, it refers to one.
func hasRunSecret(pod *corev1.Pod) bool {
	if pod.Annotations[annotationRunSecret] != "" {
		return true
	}
	name := podbuild.RunSecretName(pod.Name)
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, ctr := range list {
			for _, e := range ctr.Env {
				if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name == name {
					return true
				}
			}
		}
	}
	return false
}
