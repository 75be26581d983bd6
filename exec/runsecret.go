package exec

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
)

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
// say it is this run's.
func (r *Engine) deleteRunSecrets(ctx context.Context, s *scope) error {
	run := s.run
	for _, stage := range sortedStages(run.Status.Stages) {
		for attempt := int32(1); attempt <= run.Status.Stages[stage].Attempt; attempt++ {
			name := podbuild.RunSecretName(convention.PodName(run.Name, stage, attempt))
			sec := &corev1.Secret{}
			err := s.target.live.Get(ctx, client.ObjectKey{Namespace: s.target.namespace, Name: name}, sec)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("get secret %s/%s: %w", s.target.namespace, name, err)
			}
			if sec.Labels[convention.LabelManagedBy] != convention.ManagedByExec || sec.Labels[convention.LabelRunUID] != string(run.UID) {
				continue
			}
			if err := s.target.client.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete secret %s/%s: %w", s.target.namespace, name, err)
			}
		}
	}
	return nil
}
