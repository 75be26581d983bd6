package exec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/scheduling"
)

// schedule records a new attempt for every stage that may start now, within
// the run's and the tenant's parallelism, and returns the Pods to create.
// An attempt whose Pod is among existing already, created by an earlier
// round whose status write was held back or lost, is adopted as it is:
// schedule reports whether it adopted any.
func (r *Engine) schedule(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, existing map[string]*corev1.Pod) ([]*corev1.Pod, bool, error) {
	if _, failed := blockingFailure(st.Stages); failed {
		return nil, false, nil
	}
	adopted := false
	running := 0
	for _, ss := range st.Stages {
		if active(ss) {
			running++
		}
	}
	runCap := math.MaxInt
	if p := s.run.Spec.Parallelism; p != nil && *p > 0 {
		runCap = int(*p)
	}
	tenantCap, tenantRunning := math.MaxInt, 0
	var pods []*corev1.Pod
	for _, name := range scheduleOrder(st.Stages, s.workflow) {
		ss := st.Stages[name]
		if ss.Pod != nil || convention.Finished(ss.Status.Phase) || !depsMet(st.Stages, ss) {
			continue
		}
		if t := ss.NextAttemptTime; t != nil && s.now.Before(t.Time) {
			s.wakeAt(t.Time)
			continue
		}
		if delegated, err := r.delegate(ctx, s, st, name); err != nil {
			return nil, false, err
		} else if delegated {
			continue
		}
		if running >= runCap {
			break
		}
		if r.cfg.TenantParallelism > 0 && tenantCap == math.MaxInt {
			// Counted lazily: most rounds start nothing.
			n, err := r.load.others(ctx, r.client, s.run)
			if err != nil {
				return nil, false, err
			}
			tenantCap, tenantRunning = r.cfg.TenantParallelism, n
		}
		if running+tenantRunning >= tenantCap {
			s.capped = true
			transition(&ss.Status, cyclonev1alpha1.StatusPending, "TenantParallelism",
				fmt.Sprintf("waiting: the tenant already runs %d stages", tenantCap), s.now)
			s.wakeAt(s.now.Add(r.cfg.WaitInterval))
			break
		}
		attempt := max(ss.Attempt, 1)
		ss.Attempt = attempt
		if have := heldPod(s, existing, name, attempt); have != nil {
			startAttempt(ss, have, attempt, have.CreationTimestamp.Time, s.now)
			adopted = true
			running++
			continue
		}
		pod, err := r.buildPod(ctx, s, st, name)
		if err != nil {
			if asInvalid(err, ss, s.now) || r.asWaiting(err, s, ss) {
				continue
			}
			return nil, false, err
		}
		startAttempt(ss, pod, attempt, s.now, s.now)
		pods = append(pods, pod)
		running++
	}
	return pods, adopted, nil
}

// heldPod returns the Pod of the stage's attempt that an earlier round
// created for this run without its write, or nil.
func heldPod(s *scope, existing map[string]*corev1.Pod, stage string, attempt int32) *corev1.Pod {
	have := existing[convention.PodName(s.run.Name, stage, attempt)]
	if have == nil || have.Labels[convention.LabelRunUID] != string(s.run.UID) {
		return nil
	}
	return have
}

// adoptHeld records, as schedule does, the attempts whose Pods earlier
// rounds created while their status write was held back, and observes
// them, until no more follow. A round that ends the run (stopped, timed
// out) schedules nothing, and without this would cancel stages whose
// Pods ran, or even succeeded, before the end. It returns missing with
// the stages observe found missing added.
func (r *Engine) adoptHeld(s *scope, st *cyclonev1alpha1.WorkflowRunStatus, existing map[string]*corev1.Pod, missing []string) []string {
	for {
		adopted := false
		for _, name := range sortedStages(st.Stages) {
			ss := st.Stages[name]
			if ss.Pod != nil || convention.Finished(ss.Status.Phase) || !depsMet(st.Stages, ss) {
				continue
			}
			attempt := max(ss.Attempt, 1)
			if have := heldPod(s, existing, name, attempt); have != nil {
				ss.Attempt = attempt
				startAttempt(ss, have, attempt, have.CreationTimestamp.Time, s.now)
				adopted = true
			}
		}
		if !adopted {
			return missing
		}
		for _, name := range r.observe(s, st, existing) {
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
}

// startAttempt records the attempt of a stage whose Pod is pod, started at
// start.
func startAttempt(ss *cyclonev1alpha1.StageStatus, pod *corev1.Pod, attempt int32, start, now time.Time) {
	ss.Pod = &cyclonev1alpha1.PodInfo{Name: pod.Name, Namespace: pod.Namespace}
	ss.NextAttemptTime = nil
	ss.Status.Phase = "" // a new attempt: its phase starts afresh
	transition(&ss.Status, cyclonev1alpha1.StatusPending, ReasonPodCreating, fmt.Sprintf("attempt %d", attempt), now)
	t := metav1.NewTime(start)
	ss.Status.StartTime = &t
}

// asInvalid fails a stage whose Pod cannot be built as specified and
// reports whether err was of that kind.
func asInvalid(err error, ss *cyclonev1alpha1.StageStatus, now time.Time) bool {
	var invalid *podbuild.InvalidError
	if !errors.As(err, &invalid) {
		return false
	}
	transition(&ss.Status, cyclonev1alpha1.StatusFailed, ReasonInvalidStage, invalid.Error(), now)
	ss.NextAttemptTime = nil
	return true
}

// podCreates is how many Pods one round creates at once. A round's new
// attempts (a fan-out of stages that became ready together) wait on one
// API round trip, not one each.
const podCreates = 8

// createPods creates the Pods of the attempts st records, podCreates at
// a time, and then applies what each create says to st in the order of
// pods, so that what the round records does not depend on which create
// answered first. A Pod the API server refuses is reported on its stage
// in st rather than only in the controller's log: refused as invalid,
// the attempt fails, since the same Pod would be refused again; refused
// as forbidden (a ResourceQuota that is full, or that wants every
// container sized; a policy), the stage stays Pending with the refusal as
// its message, and the Pod is tried again after WaitInterval, when the
// quota may have room. It reports whether it changed st: a refusal is
// written at once.
func (r *Engine) createPods(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, pods []*corev1.Pod) (bool, error) {
	s.round = st
	defer func() { s.round = nil }()
	errs := make([]error, len(pods))
	wakes := make([]time.Time, len(pods))
	var eg errgroup.Group
	eg.SetLimit(podCreates)
	for i, pod := range pods {
		eg.Go(func() error {
			// Each create gets a scope of its own for what it asks of
			// the round (wakeAt), folded in below.
			own := *s
			own.requeue = time.Time{}
			errs[i] = r.createPod(ctx, &own, pod)
			wakes[i] = own.requeue
			return nil
		})
	}
	_ = eg.Wait()
	changed := false
	for i, pod := range pods {
		if !wakes[i].IsZero() {
			s.wakeAt(wakes[i])
		}
		c, err := r.podCreated(s, st, pod, errs[i])
		changed = changed || c
		if err != nil {
			return changed, err
		}
	}
	if changed {
		summarize(st, s.now)
	}
	return changed, nil
}

// podCreated records in st what the create of a stage's Pod answered, err,
// and reports whether it changed st; an error it cannot record on the
// stage is returned.
func (r *Engine) podCreated(s *scope, st *cyclonev1alpha1.WorkflowRunStatus, pod *corev1.Pod, err error) (bool, error) {
	if err == nil {
		return false, nil
	}
	ss := st.Stages[pod.Annotations[convention.AnnotationStage]]
	var refusal *refusedError
	if errors.As(err, &refusal) {
		if ss == nil {
			return false, err
		}
		// The same Pod would be refused again: no retry.
		transition(&ss.Status, cyclonev1alpha1.StatusFailed, refusal.reason, refusal.msg, s.now)
		ss.NextAttemptTime = nil
		s.wakeAt(s.now)
		return true, nil
	}
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || ss == nil {
		return false, err
	}
	msg := err.Error()
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		msg = status.Status().Message
	}
	msg = fmt.Sprintf("the API server refused pod %s: %s", pod.Name, msg)
	if apierrors.IsInvalid(err) {
		transition(&ss.Status, cyclonev1alpha1.StatusFailed, ReasonPodRefused, msg, s.now)
		ss.NextAttemptTime = nil
		s.wakeAt(s.now) // what the failure ends follows at once
	} else {
		ss.Status.Reason, ss.Status.Message = ReasonPodRefused, msg
		s.wakeAt(s.now.Add(r.cfg.WaitInterval))
	}
	return true, nil
}

// createPod creates a stage or GC Pod, adopting one of the same name that
// this run already created. A Pod checkPod refuses is never created: for
// a stage Pod the *refusedError is returned for the stage to fail; a GC
// Pod's refusal fails the run's GC, with the reason in its message.
func (r *Engine) createPod(ctx context.Context, s *scope, pod *corev1.Pod) error {
	if err := r.checkPod(s, pod); err != nil {
		if pod.Labels[convention.LabelPodKind] != convention.PodKindGC || s.run.Status.GC == nil {
			return err
		}
		st := s.run.Status.DeepCopy()
		st.GC.Phase, st.GC.Message = cyclonev1alpha1.GCFailed, err.Error()
		s.wakeAt(s.now) // what follows GC, history pruning, goes on
		return r.writeStatus(ctx, s.run, st)
	}
	// After the check, which sees what the Stage asked for: the Tenant's
	// own node selector and tolerations are gyre's to add.
	scheduling.Apply(s.target.scheduling, &pod.Spec)
	key := client.ObjectKeyFromObject(pod)
	if r.expected.pending(s.run.UID, key, s.now) {
		return nil // an earlier round created it; the cache will show it
	}
	if err := r.inject("before-pod-create"); err != nil {
		return err
	}
	// The Pod's secret references resolve from the run Secret, which
	// must exist first. The Pod says it has one, for deleteRunSecrets.
	sec := s.secrets[pod.Name]
	if sec != nil {
		if err := r.ensureRunSecret(ctx, s, sec); err != nil {
			return err
		}
		metav1.SetMetaDataAnnotation(&pod.ObjectMeta, annotationRunSecret, sec.Name)
	}
	err := s.target.client.Create(ctx, pod)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Created pod", "Pod", key)
		r.expected.created(client.ObjectKeyFromObject(s.run), s.run.UID, key, s.now)
		r.observePodCreated(s, pod)
		return r.inject("after-pod-create")
	}
	existing := &corev1.Pod{}
	if err := s.target.live.Get(ctx, client.ObjectKeyFromObject(pod), existing); err != nil {
		return fmt.Errorf("get existing pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if existing.Labels[convention.LabelRunUID] == string(s.run.UID) {
		// Ours: adopt. Built before its Stage referred to a Secret, it
		// does not read the run Secret just made for it.
		if sec != nil && existing.Annotations[annotationRunSecret] == "" {
			return r.deleteRunSecret(ctx, s, sec.Name)
		}
		return nil
	}
	if existing.Labels[convention.LabelManagedBy] == convention.ManagedByExec {
		// Left behind by an earlier run of the same name whose clean-up
		// never finished: remove it and create ours on the next round.
		if err := s.target.client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete stale pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		s.wakeAt(s.now.Add(r.cfg.WaitInterval))
		return nil
	}
	return errors.New("pod " + pod.Namespace + "/" + pod.Name + " exists and does not belong to gyre")
}

// deleteStrayPods deletes the unfinished Pods of attempts the round's
// status st no longer runs: timed-out attempts, cancelled stages,
// superseded attempts. st, not the status written, since the round may
// have created Pods whose report is held back. Deletion is level-based,
// so a deletion lost to a restart happens on the next round.
func (r *Engine) deleteStrayPods(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, pods map[string]*corev1.Pod) error {
	current := map[string]bool{}
	for _, ss := range st.Stages {
		if active(ss) {
			current[ss.Pod.Name] = true
		}
	}
	for _, pod := range pods {
		if current[pod.Name] || pod.DeletionTimestamp != nil ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		r.keeper.Keep(ctx, s.target.pods, s.run, []*corev1.Pod{pod})
		if err := s.target.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}
