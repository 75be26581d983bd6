package exec

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/internal/convention"
)

// finish does what follows the end of a run, each step at most once and
// each recorded in the status: notify, delete the stage Pods, remove the
// scratch data with a GC Pod, and prune the Workflow's old runs.
func (r *Engine) finish(ctx context.Context, s *scope) error {
	if done, err := r.notify(ctx, s); err != nil || !done {
		return err
	}
	if end := s.run.Status.Overall.CompletionTime; end != nil && !s.run.Status.Cleaned {
		if due := end.Add(r.cfg.GCDelay); s.now.Before(due) {
			s.wakeAt(due)
			return nil
		}
	}
	done, err := r.cleanup(ctx, s)
	if err != nil || !done {
		return err
	}
	if err := r.pruneHistory(ctx, s); err != nil {
		return err
	}
	return r.expire(ctx, s)
}

// expire deletes a finished run whose time to live after its completion
// has passed, or asks to be woken exactly when it will have: a TTL of an
// hour costs one reconcile, not a poll. The Workflow's
// ttlSecondsAfterFinished wins over the engine's RunTTL; 0 keeps the run.
func (r *Engine) expire(ctx context.Context, s *scope) error {
	run := s.run
	end := run.Status.Overall.CompletionTime
	if end == nil || !convention.Finished(run.Status.Overall.Phase) {
		return nil
	}
	ttl := r.cfg.RunTTL
	wf := &cyclonev1alpha1.Workflow{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: workflowName(run)}, wf)
	switch {
	case err == nil && wf.Spec.TTLSecondsAfterFinished != nil:
		ttl = time.Duration(*wf.Spec.TTLSecondsAfterFinished) * time.Second
	case client.IgnoreNotFound(err) != nil:
		return fmt.Errorf("get workflow %s: %w", workflowName(run), err)
	}
	if ttl <= 0 {
		return nil
	}
	if due := end.Add(ttl); s.now.Before(due) {
		s.wakeAt(due)
		return nil
	}
	if err := r.client.Delete(ctx, run, client.Preconditions{UID: &run.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete run past its ttl: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted run past its TTL", "ttl", ttl)
	return nil
}

// reconcileDelete cleans up after a deleted run, then lets it go.
func (r *Engine) reconcileDelete(ctx context.Context, s *scope) (ctrl.Result, error) {
	run := s.run
	if !controllerutil.ContainsFinalizer(run, convention.RunFinalizer) {
		return ctrl.Result{}, nil
	}
	if !run.Status.Cleaned && (run.Status.GC == nil || run.Status.GC.Phase != cyclonev1alpha1.GCFailed) {
		var err error
		s.target, err = r.targetOf(ctx, run)
		var refusal *refusedError
		switch {
		case errors.Is(err, errClusterNotFound):
			// The cluster is gone, and the run's Pods and data with it.
		case errors.As(err, &refusal):
			// Not gyre's to clean: see failRefused.
		case err != nil:
			return ctrl.Result{}, err
		default:
			done, err := r.cleanup(ctx, s)
			if err != nil || !done {
				return s.result(), err
			}
		}
	}
	if r.logs != nil {
		// The logs go with the run, so historyLimit and the TTL bound
		// their space too.
		if err := r.logs.DeleteRun(ctx, run.Namespace, run.Name); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.writeFinalizer(ctx, run, controllerutil.RemoveFinalizer); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// cleanup deletes the run's stage Pods, or keeps them when they have all
// ended, then runs the GC Pod, and reports whether all is done. GC is a phase in the status with its own attempts,
// so it resumes where it was after a restart.
func (r *Engine) cleanup(ctx context.Context, s *scope) (bool, error) {
	run := s.run
	if run.Status.Cleaned || (run.Status.GC != nil && run.Status.GC.Phase != cyclonev1alpha1.GCRunning) {
		return true, r.sweep(ctx, s)
	}
	stagePods, err := r.runPods(ctx, s, convention.PodKindWorkload)
	if err != nil {
		return false, err
	}
	// Stage Pods that have all ended write nothing any more: with a PVC
	// they stay while the GC Pod runs, and go with it in one request
	// (see deleteRunPods).
	if s.target.pvc == "" || !allEnded(stagePods) {
		if err := r.deleteStagePods(ctx, s, stagePods); err != nil || len(stagePods) > 0 {
			// The GC Pod must not remove data a stage Pod still writes:
			// wait for their deletion events.
			s.wakeAt(s.now.Add(r.cfg.WaitInterval))
			return false, err
		}
	}
	st := run.Status.DeepCopy()
	if s.target.pvc == "" {
		if err := r.deleteRunSecrets(ctx, s, nil); err != nil {
			return false, err
		}
		st.Cleaned = true
		st.GC = &cyclonev1alpha1.GCStatus{Phase: cyclonev1alpha1.GCSucceeded}
		return true, r.writeStatus(ctx, run, st)
	}
	now := metav1.NewTime(s.now)
	gcPods, err := r.runPods(ctx, s, convention.PodKindGC)
	if err != nil {
		return false, err
	}
	pod := gcPods[convention.GCPodName(run.Name)]
	if st.GC == nil {
		// A GC Pod created while the run's end was held back (see
		// foldGC) started the first attempt.
		start := now
		if pod != nil && pod.DeletionTimestamp == nil {
			start = pod.CreationTimestamp
		}
		st.GC = &cyclonev1alpha1.GCStatus{Phase: cyclonev1alpha1.GCRunning, Attempt: 1, StartTime: &start}
		if err := r.writeStatus(ctx, run, st); err != nil {
			return false, err
		}
	}
	gc := st.GC
	timedOut := gc.StartTime != nil && !s.now.Before(gc.StartTime.Add(r.cfg.GCTimeout))
	switch {
	case pod == nil:
		// The stage Pods have ended, or are gone, and no longer read
		// their run Secrets; once per GC attempt.
		if err := r.deleteRunSecrets(ctx, s, stagePods); err != nil {
			return false, err
		}
		return false, r.createGCPod(ctx, s)
	case pod.DeletionTimestamp != nil:
		return false, nil // an earlier attempt is going away
	case pod.Status.Phase == corev1.PodSucceeded:
		r.gcPace.observe(s.now.Sub(pod.CreationTimestamp.Time))
		if err := r.deleteRunPods(ctx, s, stagePods); err != nil {
			return false, err
		}
		st.Cleaned = true
		gc.Phase, gc.Message = cyclonev1alpha1.GCSucceeded, ""
		return true, r.writeStatus(ctx, run, st)
	case pod.Status.Phase == corev1.PodFailed || timedOut:
		del := func() error { return r.deletePod(ctx, s, pod) }
		if gc.Attempt >= r.cfg.GCAttempts {
			// No attempt follows: the stage Pods go too.
			del = func() error { return r.deleteRunPods(ctx, s, stagePods) }
		}
		if err := del(); err != nil {
			return false, err
		}
		reason, msg := podFailure(pod)
		if timedOut && pod.Status.Phase != corev1.PodFailed {
			reason, msg = ReasonTimeout, fmt.Sprintf("GC pod did not finish within %s", r.cfg.GCTimeout)
		}
		gc.Message = fmt.Sprintf("attempt %d: %s: %s", gc.Attempt, reason, msg)
		if gc.Attempt >= r.cfg.GCAttempts {
			gc.Phase = cyclonev1alpha1.GCFailed
		} else {
			gc.Attempt++
			gc.StartTime = &now
		}
		return gc.Phase == cyclonev1alpha1.GCFailed, r.writeStatus(ctx, run, st)
	default:
		s.wakeAt(gc.StartTime.Add(r.cfg.GCTimeout))
		return false, nil
	}
}

// allEnded reports whether every one of pods has ended and none is being
// deleted.
func allEnded(pods map[string]*corev1.Pod) bool {
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || (pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed) {
			return false
		}
	}
	return true
}

// keepLogs keeps the logs of the run's stage Pods that are not being
// deleted yet, before they are.
func (r *Engine) keepLogs(ctx context.Context, s *scope, stagePods map[string]*corev1.Pod) {
	var live []*corev1.Pod
	for _, pod := range stagePods {
		if pod.DeletionTimestamp == nil {
			live = append(live, pod)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Name < live[j].Name })
	r.keeper.Keep(ctx, s.target.pods, s.run, live)
}

// deleteStagePods deletes the run's stage Pods, with one request, unless
// every one is being deleted already.
func (r *Engine) deleteStagePods(ctx context.Context, s *scope, stagePods map[string]*corev1.Pod) error {
	for _, pod := range stagePods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		r.keepLogs(ctx, s, stagePods)
		if err := s.target.client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(s.target.namespace),
			client.MatchingLabels{convention.LabelRunUID: string(s.run.UID), convention.LabelPodKind: convention.PodKindWorkload}); err != nil {
			return fmt.Errorf("delete pods of run: %w", err)
		}
		return nil
	}
	return nil
}

// deleteRunPods deletes the run's stage Pods and its GC Pod with one
// request, once GC has succeeded.
func (r *Engine) deleteRunPods(ctx context.Context, s *scope, stagePods map[string]*corev1.Pod) error {
	r.keepLogs(ctx, s, stagePods)
	if err := s.target.client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(s.target.namespace),
		client.MatchingLabels{convention.LabelRunUID: string(s.run.UID)}); err != nil {
		return fmt.Errorf("delete pods of run: %w", err)
	}
	r.swept.Store(client.ObjectKeyFromObject(s.run), s.run.UID)
	return nil
}

func (r *Engine) deletePod(ctx context.Context, s *scope, pod *corev1.Pod) error {
	if err := s.target.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// createGCPod creates the Pod that removes "<run>/" from the tenant PVC.
func (r *Engine) createGCPod(ctx context.Context, s *scope) error {
	return r.createPod(ctx, s, r.gcPods.Pod(s.run, s.target.namespace, s.target.pvc, s.target.level))
}

// notify tells the Workflow's receivers about the finished run, once per
// receiver, records the outcomes, and reports whether every receiver's is
// recorded. The sends run in the background (see deliveries): a reconcile
// starts them and records those that have ended. A crash between sending
// and recording sends again: delivery is at least once.
//
// A Webhook receiver gets the run as JSON; Email and Slack receivers get
// its summary (see notify.Summary), by SMTP and by a Slack incoming webhook or
// chat.postMessage. A receiver the configuration cannot serve, such as
// Email without an SMTP server, is recorded as failed with a message
// naming what is missing.
func (r *Engine) notify(ctx context.Context, s *scope) (bool, error) {
	run := s.run
	wf := &cyclonev1alpha1.Workflow{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: workflowName(run)}, wf); err != nil {
		return true, client.IgnoreNotFound(err)
	}
	n := wf.Spec.Notification
	if !policyNotifies(n, run.Status.Overall.Phase) {
		return true, nil
	}
	st := run.Status.DeepCopy()
	// The sends outlive this reconcile, which goes on changing run. A
	// receiver finds the run's variables where Cyclone's find them.
	snapshot := run.DeepCopy()
	snapshot.Spec.GlobalVariables = snapshot.Status.GlobalVariables
	pending := false
	for _, rcv := range n.Receivers {
		for _, addr := range rcv.Addresses {
			key := string(rcv.Type) + ":" + addr
			if _, done := st.Notifications[key]; done {
				continue
			}
			out, ok := r.deliveries.Outcome(run, key, func(ctx context.Context) cyclonev1alpha1.NotificationStatus {
				return r.sender.Send(ctx, snapshot, rcv.Type, addr)
			})
			if !ok {
				pending = true
				continue
			}
			if st.Notifications == nil {
				st.Notifications = map[string]cyclonev1alpha1.NotificationStatus{}
			}
			st.Notifications[key] = out
		}
	}
	if err := r.writeStatus(ctx, run, st); err != nil {
		// The outcomes stay kept for the next reconcile to record.
		return false, err
	}
	if pending {
		s.wakeAt(s.now.Add(notify.Poll))
		return false, nil
	}
	r.deliveries.Forget(client.ObjectKeyFromObject(run))
	return true, nil
}

// pruneHistory deletes the oldest finished runs of the run's Workflow
// beyond its historyLimit. Deleted runs clean up through their finalizer.
func (r *Engine) pruneHistory(ctx context.Context, s *scope) error {
	run := s.run
	wf := &cyclonev1alpha1.Workflow{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: workflowName(run)}, wf); err != nil {
		return client.IgnoreNotFound(err)
	}
	if wf.Spec.HistoryLimit == nil {
		return nil
	}
	list := &cyclonev1alpha1.WorkflowRunList{}
	if err := r.client.List(ctx, list, client.InNamespace(run.Namespace)); err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	var done []*cyclonev1alpha1.WorkflowRun
	for i := range list.Items {
		o := &list.Items[i]
		if workflowName(o) == wf.Name && convention.Finished(o.Status.Overall.Phase) && o.DeletionTimestamp.IsZero() {
			done = append(done, o)
		}
	}
	limit := int(*wf.Spec.HistoryLimit)
	if len(done) <= limit {
		return nil
	}
	finishedAt := func(o *cyclonev1alpha1.WorkflowRun) metav1.Time {
		if t := o.Status.Overall.CompletionTime; t != nil {
			return *t
		}
		return o.CreationTimestamp
	}
	sort.SliceStable(done, func(i, j int) bool {
		ti, tj := finishedAt(done[i]), finishedAt(done[j])
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return done[i].Name > done[j].Name
	})
	for _, old := range done[limit:] {
		if err := r.client.Delete(ctx, old, client.Preconditions{UID: &old.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete old run %s: %w", old.Name, err)
		}
		ctrl.LoggerFrom(ctx).Info("Deleted run beyond the history limit", "WorkflowRun", client.ObjectKeyFromObject(old))
	}
	return nil
}
