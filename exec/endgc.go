package exec

import (
	"context"
	"errors"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// A run's end and its clean-up share one status write when the GC is
// quick. The round that finds the run ended creates its GC Pod at once and
// holds the end back, as holdBack holds a running run's progress, for at
// most the report delay (reportDelay) from the end, while GC Pods lately finished
// within it (gcPace): once the GC Pod has succeeded,
// one write records the end, the GC's success and status.cleaned, and one
// request deletes the run's Pods. A GC Pod still running at the deadline,
// or failed, gets the end written as before, with the GC Running, and
// cleanup follows it from there.
//
// This is as restart- and conflict-safe as a held stage write: nothing is
// decided that a later round cannot derive again. The stage times come
// from the Pods, which have all ended and change no more; what the round
// dates "now" (the run's completion, stages cancelled by the end) is
// dated at the time the engine first found the run ended, kept in memory
// (ending), or, after a restart, at the GC Pod's creation, which followed
// it; and the GC Pod has a name fixed by the run, so a later round adopts
// it, and its attempt starts at the Pod's creation. Events, metrics and
// notifications follow the written status as ever, so the end is
// reported once, when it is written.

// foldGC is the step of progress for a round whose status st ends the
// run and starts its GC. It creates the GC Pod and holds the end back,
// or writes the end with the GC's success; it reports whether it did
// either (the round then stops). Otherwise st.GC is the attempt the end
// is written with, or nil for a new one.
func (r *Engine) foldGC(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, starting bool, pods map[string]*corev1.Pod) (bool, error) {
	key := client.ObjectKeyFromObject(s.run)
	if !r.mayFoldGC(s, st, starting, pods) {
		r.ending.Delete(key)
		return false, nil
	}
	gcPods, err := r.runPods(ctx, s, convention.PodKindGC)
	if err != nil {
		return false, err
	}
	pod := gcPods[convention.GCPodName(s.run.Name)]
	if pod != nil && pod.DeletionTimestamp != nil {
		r.ending.Delete(key)
		return false, nil // not this end's: cleanup waits for it to go
	}
	endAt := s.now
	if at, ok := r.ending.Load(key); ok {
		endAt = at.(time.Time)
	} else if pod != nil {
		endAt = minTime(pod.CreationTimestamp.Time, s.now)
	}
	r.ending.Store(key, endAt)
	redate(st, s.now, endAt)
	if pod == nil {
		// The stage Pods have ended and no longer read their run
		// Secrets.
		if err := r.deleteRunSecrets(ctx, s, pods); err != nil {
			return false, err
		}
		created := r.gcPods.Pod(s.run, s.target.namespace, s.target.pvc, s.target.level)
		if err := r.createPod(ctx, s, created); err != nil {
			var refusal *refusedError
			if errors.As(err, &refusal) {
				// Written with the end, the refusal fails the GC in
				// cleanup, as it does for any run.
				r.ending.Delete(key)
				return false, nil
			}
			return false, err
		}
		if err := r.inject("after-gc-pod-create"); err != nil {
			return false, err
		}
		if !created.CreationTimestamp.IsZero() {
			pod = created // adopted instead: the cache brings it
		}
	}
	start := metav1.NewTime(s.now)
	if pod != nil {
		start = pod.CreationTimestamp
	}
	st.GC = &cyclonev1alpha1.GCStatus{Phase: cyclonev1alpha1.GCRunning, Attempt: 1, StartTime: &start}
	switch {
	case pod != nil && pod.Status.Phase == corev1.PodSucceeded:
		r.gcPace.observe(s.now.Sub(pod.CreationTimestamp.Time))
		st.GC.Phase = cyclonev1alpha1.GCSucceeded
		st.Cleaned = true
		if err := r.writeStatus(ctx, s.run, st); err != nil {
			return false, err
		}
		// After the write, not before: a round that found the Pods gone
		// and the end unwritten could not derive the end again. An
		// engine stopped in between leaves them to sweep.
		return true, r.deleteRunPods(ctx, s, pods)
	case pod != nil && pod.Status.Phase == corev1.PodFailed:
		return false, nil
	}
	due := endAt
	if delay := r.reportDelay(); r.gcPace.within(delay) {
		due = due.Add(delay)
	}
	if !s.now.Before(due) {
		return false, nil
	}
	s.wakeAt(due)
	return true, nil
}

// mayFoldGC reports whether the end st of a run, which needs a GC Pod,
// may wait for it (see foldGC): not when the end is written at once
// anyway (no RunningReportDelay, a TenantParallelism counting the run's
// attempts from its written status, a step that must be written now, a
// start whose drawn values are written first), not when the GC waits
// (GCDelay) or follows notifications, which are sent once the end is
// written, and not while a stage Pod has not ended: the GC must not
// remove data a Pod still writes.
func (r *Engine) mayFoldGC(s *scope, st *cyclonev1alpha1.WorkflowRunStatus, starting bool, pods map[string]*corev1.Pod) bool {
	if r.cfg.RunningReportDelay <= 0 || r.cfg.TenantParallelism > 0 || r.cfg.GCDelay > 0 || s.writeNow {
		return false
	}
	if starting && r.drawsVariables(s) {
		return false
	}
	return !policyNotifies(s.workflow.Spec.Notification, st.Overall.Phase) && allEnded(pods)
}

// policyNotifies reports whether n has receivers for a run ended in phase.
func policyNotifies(n cyclonev1alpha1.Notification, phase cyclonev1alpha1.StatusPhase) bool {
	switch n.Policy {
	case cyclonev1alpha1.NotificationPolicySuccess:
		if phase != cyclonev1alpha1.StatusSucceeded {
			return false
		}
	case cyclonev1alpha1.NotificationPolicyFailure:
		if phase != cyclonev1alpha1.StatusFailed {
			return false
		}
	}
	for _, rcv := range n.Receivers {
		if len(rcv.Addresses) > 0 {
			return true
		}
	}
	return false
}

// redate dates at what the round's status st dated now: the run's
// completion and what its end cancelled or failed. An end held back is
// derived again by later rounds, and must read as the first round read.
func redate(st *cyclonev1alpha1.WorkflowRunStatus, now, at time.Time) {
	if at.Equal(now) {
		return
	}
	fix := func(s *cyclonev1alpha1.Status) {
		for _, t := range []**metav1.Time{&s.StartTime, &s.LastTransitionTime, &s.CompletionTime} {
			if *t != nil && (*t).Time.Equal(now) {
				v := metav1.NewTime(at)
				*t = &v
			}
		}
	}
	fix(&st.Overall)
	for _, ss := range st.Stages {
		fix(&ss.Status)
	}
}

// sweep deletes the Pods a cleaned run still has: foldGC writes a run's
// end and clean-up before it deletes the run's Pods, and an engine that
// stopped in between leaves them. It looks once per run and process,
// in the cache, and not after this process deleted them itself.
func (r *Engine) sweep(ctx context.Context, s *scope) error {
	run := s.run
	if !run.Status.Cleaned || run.Status.GC == nil || run.Status.GC.Phase != cyclonev1alpha1.GCSucceeded {
		return nil
	}
	key := client.ObjectKeyFromObject(run)
	if uid, ok := r.swept.Load(key); ok && uid == run.UID {
		return nil
	}
	list := &corev1.PodList{}
	if err := s.target.client.List(ctx, list, client.InNamespace(s.target.namespace),
		client.MatchingLabels{convention.LabelRunUID: string(run.UID)}); err != nil {
		return err
	}
	stagePods := map[string]*corev1.Pod{}
	left := false
	for i := range list.Items {
		pod := &list.Items[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		left = true
		if pod.Labels[convention.LabelPodKind] == convention.PodKindWorkload {
			stagePods[pod.Name] = pod
		}
	}
	if !left {
		r.swept.Store(key, run.UID)
		return nil
	}
	return r.deleteRunPods(ctx, s, stagePods)
}

// gcPace follows how long GC Pods take, from their creation to their
// success as the engine sees it, so that a run's end waits for its GC Pod
// (foldGC) only while GC Pods lately finished within the report delay.
// On a loaded cluster, where none does, the wait would delay every end by
// that delay and save no write: the end is then written at once,
// with the GC Running, as it is when the wait runs out.
type gcPace struct {
	mu  sync.Mutex
	avg time.Duration // moving average; zero before the first GC Pod
}

// observe records a GC Pod that took d.
func (p *gcPace) observe(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.avg == 0 {
		p.avg = d
		return
	}
	// A quarter of the weight on the newest: a few quick GC Pods in a
	// row bring the wait back, one slow one does not take it away.
	p.avg += (d - p.avg) / 4
}

// within reports whether GC Pods lately took less than limit, or none was
// seen yet.
func (p *gcPace) within(limit time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.avg < limit
}
