package reconciler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/record"
	"github.com/gyreops/gyre/source"
)

// Defaults for a Repository whose spec leaves them out (the API server
// normally fills them in).
const (
	defaultRepositoryInterval = time.Minute
	defaultRepositoryTimeout  = 60 * time.Second
	// repositoryJitter spreads polls of many Repositories created
	// together: ±10% of the interval.
	repositoryJitter = 0.1
	// repositoryFieldOwner is the field manager of status patches.
	repositoryFieldOwner = "gyre-repository"
)

// RepositoryReconciler polls each Repository's remote and keeps the
// artifact of its ref's current commit in the Git's cache, named after the
// Repository (see StoreArtifacts). An unchanged remote costs one ref
// listing per interval.
type RepositoryReconciler struct {
	// Client reads Repositories and patches status.
	Client client.Client
	// Secrets reads spec.secretRef from the API server; the manager's
	// API reader when nil. A cached read would start a cluster-wide
	// informer holding every Secret of the cluster in gyre's memory.
	Secrets client.Reader
	// Git lists, fetches and checks out.
	Git *source.Git
	// Recorder records one event per change of outcome; none when nil.
	Recorder events.EventRecorder
	// Clock stamps artifacts; the real clock when nil.
	Clock clock.PassiveClock
	// Jitter spreads requeue intervals; ±10% when nil.
	Jitter func(time.Duration) time.Duration
}

// repositoryScope is one reconcile's state; each field says which step
// fills it.
type repositoryScope struct {
	obj *gyrev1alpha1.Repository
	// auth is filled by credentials.
	auth *source.Auth
}

// SetupWithManager registers the reconciler. Reconciles run on spec
// changes and on a new gyre.dev/requestedAt value, not on status writes.
func (r *RepositoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Secrets == nil {
		r.Secrets = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = record.Distinct(mgr.GetEventRecorder("gyre-repository"))
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&gyrev1alpha1.Repository{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, requestedAtChanged()))).
		Named("repository").
		Complete(r)
}

// ArtifactDir returns the directory of repo's current artifact; it is
// what the Tenant reconciler reads.
func (r *RepositoryReconciler) ArtifactDir(repo *gyrev1alpha1.Repository) (string, error) {
	return StoreArtifacts{Store: r.Git.Store()}.ArtifactDir(repo)
}

// Reconcile brings one Repository's artifact up to date with its remote.
func (r *RepositoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &gyrev1alpha1.Repository{}
	if err := r.Client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: its checkouts serve no one any more.
			forgetRepository(req.Name)
			return ctrl.Result{}, r.Git.Store().Remove(req.Name)
		}
		return ctrl.Result{}, err
	}
	log := ctrl.LoggerFrom(ctx).WithValues("Repository", klog.KObj(obj))
	ctx = ctrl.LoggerInto(ctx, log)
	if obj.Spec.Suspend {
		log.V(1).Info("Skipping suspended Repository")
		return ctrl.Result{}, nil
	}

	patcher := patch.NewSerialPatcher(obj, r.Client)
	beforeReady := conditions.Get(obj, meta.ReadyCondition)
	beforeRevision := ""
	if obj.Status.Artifact != nil {
		beforeRevision = obj.Status.Artifact.Revision
	}
	defer func() {
		var requeue bool
		requeue, retErr = r.finish(ctx, obj, patcher, beforeReady, beforeRevision, retErr)
		if requeue {
			result = ctrl.Result{RequeueAfter: r.jitter(repositoryInterval(obj))}
		}
	}()
	if v, ok := obj.Annotations[gyrev1alpha1.ReconcileRequestAnnotation]; ok {
		obj.Status.LastHandledReconcileAt = v
	}

	if obj.Generation != obj.Status.ObservedGeneration {
		// A new spec: say what is happening. A routine poll writes
		// nothing unless something changed.
		conditions.MarkReconciling(obj, meta.ProgressingReason, "Fetching %s of %s", repositoryRef(obj), source.RedactURL(obj.Spec.URL))
		if err := patcher.Patch(ctx, obj, patch.WithFieldOwner(repositoryFieldOwner)); err != nil {
			return ctrl.Result{}, fmt.Errorf("patch progress: %w", err)
		}
	}

	s := &repositoryScope{obj: obj}
	for _, step := range []func(context.Context, *repositoryScope) (ctrl.Result, error){
		r.credentials,
		r.fetch,
	} {
		res, err := step(ctx, s)
		if err != nil || !res.IsZero() {
			return res, err
		}
	}
	return ctrl.Result{RequeueAfter: r.jitter(repositoryInterval(obj))}, nil
}

// credentials reads spec.secretRef into an Auth.
func (r *RepositoryReconciler) credentials(ctx context.Context, s *repositoryScope) (ctrl.Result, error) {
	ref := s.obj.Spec.SecretRef
	if ref == nil {
		return ctrl.Result{}, nil
	}
	secret := &corev1.Secret{}
	if err := r.Secrets.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			err = &reasonedError{reason: ReasonSecretNotFound, err: fmt.Errorf("secret %s/%s not found", ref.Namespace, ref.Name)}
		}
		return ctrl.Result{}, err
	}
	auth, err := source.AuthFromSecret(secret.Data, s.obj.Spec.URL)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	s.auth = auth
	return ctrl.Result{}, nil
}

// fetch resolves the ref and, when it moved, fetches and checks it out.
// The last artifact stays in status while the remote fails.
func (r *RepositoryReconciler) fetch(ctx context.Context, s *repositoryScope) (ctrl.Result, error) {
	obj := s.obj
	req := source.Request{Name: obj.Name, URL: obj.Spec.URL, Ref: repositoryRef(obj), Auth: s.auth, Limits: repositoryLimits(obj)}
	if obj.Spec.Ignore != nil {
		req.Ignore = *obj.Spec.Ignore
	}
	var last *source.Artifact
	if a := obj.Status.Artifact; a != nil {
		commit := source.CommitOf(a.Revision)
		last = &source.Artifact{Revision: a.Revision, Commit: commit, Digest: a.Digest,
			Dir: r.Git.Store().Dir(obj.Name, commit, req.Ignore)}
	}
	ctx, cancel := context.WithTimeout(ctx, repositoryTimeout(obj))
	defer cancel()
	art, fetched, err := r.timedFetch(ctx, obj.Name, req, last)
	if err != nil {
		return ctrl.Result{}, err
	}
	if fetched {
		ctrl.LoggerFrom(ctx).Info("Stored artifact", "revision", art.Revision, "digest", art.Digest)
	}
	if a := obj.Status.Artifact; a == nil || a.Revision != art.Revision || a.Digest != art.Digest {
		obj.Status.Artifact = &gyrev1alpha1.Artifact{
			Revision:       art.Revision,
			Digest:         art.Digest,
			LastUpdateTime: metav1.NewTime(r.now()),
		}
	}
	return ctrl.Result{}, nil
}

// finish derives the conditions from the outcome, records the event it
// deserves and patches status. A spec that cannot work stalls the
// Repository with a terminal error; other failures are retried with
// backoff. A commit past the Repository's limits stalls it too, but a
// new commit can fix that, so finish asks for the usual poll (requeue)
// instead of a terminal error.
func (r *RepositoryReconciler) finish(ctx context.Context, obj *gyrev1alpha1.Repository, patcher *patch.SerialPatcher,
	beforeReady *metav1.Condition, beforeRevision string, err error) (requeue bool, _ error) {
	o := repositoryOutcome{err: err, terminal: isTerminal(err)}
	if obj.Status.Artifact != nil {
		o.revision = obj.Status.Artifact.Revision
	}
	ready, reconciling, stalled := repositoryConditions(o, obj.Generation)
	setRepositoryConditions(&obj.Status.Conditions, ready, reconciling, stalled)
	if err == nil {
		obj.Status.ObservedGeneration = obj.Generation
	}
	if t, reason, msg, ok := repositoryEvent(beforeReady, beforeRevision, o); ok && r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, t, reason, "Reconcile", "%s", msg)
	}
	perr := patcher.Patch(ctx, obj,
		patch.WithOwnedConditions{Conditions: []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition}},
		patch.WithFieldOwner(repositoryFieldOwner))
	if perr != nil {
		perr = fmt.Errorf("patch status: %w", perr)
	}
	switch {
	case o.terminal && source.ReasonOf(err) == source.LimitExceeded:
		ctrl.LoggerFrom(ctx).Error(err, "Stalling until the repository or its limits change")
		if perr == nil {
			return true, nil
		}
		err = nil
	case o.terminal:
		ctrl.LoggerFrom(ctx).Error(err, "Stalling until the spec changes")
		err = reconcile.TerminalError(err)
	}
	if perr == nil {
		return false, err
	}
	return false, kerrors.NewAggregate([]error{err, perr})
}

// repositoryLimits maps the API's limits to source's; unset fields take
// source's defaults, the same as the API's.
func repositoryLimits(obj *gyrev1alpha1.Repository) source.Limits {
	var l source.Limits
	if s := obj.Spec.Limits; s != nil {
		if s.MaxArtifactBytes != nil {
			l.MaxArtifactBytes = s.MaxArtifactBytes.Value()
		}
		if s.MaxFiles != nil {
			l.MaxFiles = *s.MaxFiles
		}
	}
	return l
}

// isTerminal says whether err can only be fixed by a spec change.
func isTerminal(err error) bool {
	var se *source.Error
	return errors.As(err, &se) && se.Terminal()
}

// repositoryRef maps the API's ref to source's; nil follows main.
func repositoryRef(obj *gyrev1alpha1.Repository) source.Ref {
	ref := obj.Spec.Ref
	if ref == nil {
		return source.Ref{}
	}
	return source.Ref{Branch: ref.Branch, Tag: ref.Tag, SemVer: ref.SemVer, Commit: ref.Commit}
}

func repositoryInterval(obj *gyrev1alpha1.Repository) time.Duration {
	if d := obj.Spec.Interval; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return defaultRepositoryInterval
}

func repositoryTimeout(obj *gyrev1alpha1.Repository) time.Duration {
	if d := obj.Spec.Timeout; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return defaultRepositoryTimeout
}

func (r *RepositoryReconciler) jitter(d time.Duration) time.Duration {
	if r.Jitter != nil {
		return r.Jitter(d)
	}
	return time.Duration(float64(d) * (1 + repositoryJitter*(2*rand.Float64()-1)))
}

func (r *RepositoryReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// requestedAtChanged lets an update through when the gyre.dev/requestedAt
// annotation got a new value: `gyre reconcile` and webhooks ask for an
// immediate poll this way.
func requestedAtChanged() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			if e.ObjectOld == nil || e.ObjectNew == nil {
				return false
			}
			key := gyrev1alpha1.ReconcileRequestAnnotation
			v, ok := e.ObjectNew.GetAnnotations()[key]
			return ok && v != e.ObjectOld.GetAnnotations()[key]
		},
	}
}
