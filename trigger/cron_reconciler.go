package trigger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/status"
)

// Event reasons of triggers.
const (
	// ReasonFired: the trigger started a run.
	ReasonFired = "Fired"
	// ReasonMissed: scheduled times were skipped by the catch-up policy or
	// the starting deadline.
	ReasonMissed = "MissedSchedule"
	// ReasonForbidden: a scheduled time was skipped because a run of the
	// trigger is still going and the concurrency policy is Forbid.
	ReasonForbidden = "ConcurrentRunForbidden"
	// ReasonReplaced: running runs were stopped for a new one.
	ReasonReplaced = "Replaced"
	// ReasonInvalidSchedule: the schedule or time zone does not parse.
	ReasonInvalidSchedule = "InvalidSchedule"
	// ReasonFailed: a run could not be started.
	ReasonFailed = "FireFailed"
)

// CronReconciler starts the WorkflowRuns of Cron WorkflowTriggers at their
// scheduled times.
type CronReconciler struct {
	// Client reads triggers and writes runs and trigger status.
	Client client.Client
	// APIReader lists runs straight from the API server, so the concurrency
	// policy sees a run started moments ago that a cache may not have yet.
	APIReader client.Reader
	// Recorder records an event per outcome on the trigger.
	Recorder events.EventRecorder
	// Clock tells the time; the schedule is read against it.
	Clock clock.PassiveClock
	// Shard is this replica's shard (gyre controller --shard): only the
	// triggers of its shard's Tenants fire here; "" fires those of
	// Tenants without a shard.
	Shard string

	// upSince is when the reconciler first ran: scheduled times before it
	// came while no controller was watching.
	upSince     time.Time
	upSinceOnce sync.Once
}

// cronScope carries one reconcile of one trigger.
type cronScope struct {
	trig *cyclonev1alpha1.WorkflowTrigger
	now  time.Time
	// fired counts the scheduled times that have a run, started by this
	// reconcile or by an earlier one that did not record it.
	fired int
}

// Reconcile starts the runs due for one Cron trigger, records the ledger
// in its status and requeues for the next scheduled time.
func (r *CronReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if ours, err := r.inShard(ctx, req.Namespace); !ours || err != nil {
		return ctrl.Result{}, err
	}
	trig := &cyclonev1alpha1.WorkflowTrigger{}
	if err := r.Client.Get(ctx, req.NamespacedName, trig); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if trig.Spec.Type != cyclonev1alpha1.TriggerTypeCron || !trig.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("WorkflowTrigger", klog.KObj(trig)))
	base := trig.DeepCopy()

	sc := &cronScope{trig: trig, now: r.Clock.Now()}
	r.upSinceOnce.Do(func() { r.upSince = sc.now })
	result, err := r.reconcile(ctx, sc)

	// The optimistic lock makes the ledger exactly-once: of two replicas
	// that fired the same times, only one records them; the other gets a
	// conflict, rereads the ledger and finds nothing left to do.
	if _, perr := status.Patch(ctx, r.Client, base, trig); perr != nil {
		if apierrors.IsConflict(perr) {
			return status.OnConflict(result, perr)
		}
		return ctrl.Result{}, errors.Join(err, fmt.Errorf("record status of trigger %s: %w", klog.KObj(trig), perr))
	}
	return result, err
}

// reconcile fires the due times of sc.trig and updates its status in
// memory; Reconcile writes it.
func (r *CronReconciler) reconcile(ctx context.Context, sc *cronScope) (ctrl.Result, error) {
	trig := sc.trig
	sched, err := convention.ParseSchedule(trig.Spec.Cron)
	if err != nil {
		if trig.Status.LastError != err.Error() {
			r.event(trig, corev1.EventTypeWarning, ReasonInvalidSchedule, "%s", err)
		}
		trig.Status.LastError = err.Error()
		trig.Status.NextScheduleTime = nil
		trig.Status.ObservedGeneration = trig.Generation
		return ctrl.Result{}, reconcile.TerminalError(err)
	}

	since := trig.CreationTimestamp.Time
	if trig.Status.LastScheduleTime != nil {
		since = trig.Status.LastScheduleTime.Time
	}
	plan := planCron(sched, trig.Spec.Cron, since, sc.now, r.upSince)

	if trig.Spec.Disabled {
		// A disabled trigger still moves its ledger, so the times it slept
		// through are not caught up when it is enabled again.
		plan.fire, plan.missed = nil, false
	}
	if plan.missed {
		r.event(trig, corev1.EventTypeWarning, ReasonMissed,
			"Skipped scheduled times up to %s (catch-up %s)", plan.ledger.UTC().Format(time.RFC3339), catchUp(trig.Spec.Cron))
	}
	for i, t := range plan.fire {
		if err := r.fire(ctx, sc, t); err != nil {
			// Record what was done: the ledger stops at the last time that
			// fired, so the next attempt starts again from t and does not
			// count the earlier ones twice.
			var ledger time.Time
			if i > 0 {
				ledger = plan.fire[i-1]
			}
			r.finish(sc, plan, ledger)
			trig.Status.LastError = err.Error()
			r.event(trig, corev1.EventTypeWarning, ReasonFailed, "%s", err)
			return ctrl.Result{}, err
		}
	}
	r.finish(sc, plan, plan.ledger)
	trig.Status.LastError = ""
	trig.Status.ObservedGeneration = trig.Generation

	if plan.next.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: plan.next.Sub(sc.now)}, nil
}

// finish records the ledger, the count and the next time.
func (r *CronReconciler) finish(sc *cronScope, plan cronPlan, ledger time.Time) {
	st := &sc.trig.Status
	st.Count += sc.fired
	if !ledger.IsZero() {
		st.LastScheduleTime = &metav1.Time{Time: ledger}
	}
	st.NextScheduleTime = nil
	if !plan.next.IsZero() && !sc.trig.Spec.Disabled {
		st.NextScheduleTime = &metav1.Time{Time: plan.next}
	}
}

// fire starts the run of scheduled time t, as the concurrency policy
// allows. A run of that name already there counts as fired.
func (r *CronReconciler) fire(ctx context.Context, sc *cronScope, t time.Time) error {
	trig := sc.trig
	name := cronRunName(trig.Name, t)
	switch verdict, err := r.admit(ctx, sc, name, t); {
	case err != nil:
		observeFire(trig, fireError)
		return err
	case verdict == verdictSkip:
		observeFire(trig, fireForbidden)
		return nil
	case verdict == verdictStarted:
		observeFire(trig, fireExisting)
		sc.fired++
		recordFired(sc, name, t)
		return nil
	}

	run := newRun(trig, name, map[string]string{convention.AnnotationScheduleTime: t.UTC().Format(time.RFC3339)}, nil)
	if err := r.Client.Create(ctx, run); err != nil {
		if apierrors.IsAlreadyExists(err) {
			observeFire(trig, fireExisting)
			sc.fired++
			recordFired(sc, name, t)
			return nil
		}
		observeFire(trig, fireError)
		return fmt.Errorf("create run %q: %w", name, err)
	}
	observeFire(trig, fireStarted)
	ctrl.LoggerFrom(ctx).Info("Started run", "WorkflowRun", klog.KObj(run), "scheduleTime", t)
	sc.fired++
	recordFired(sc, run.Name, t)
	r.event(trig, corev1.EventTypeNormal, ReasonFired, "Started WorkflowRun %s for %s", run.Name, t.UTC().Format(time.RFC3339))
	return nil
}

// recordFired makes the run of scheduled time t the trigger's last fired
// one, unless a later time's run already is. A run found already there
// counts too: the replica that created it may have died, or lost the
// race to write the trigger's status, before recording it.
func recordFired(sc *cronScope, name string, t time.Time) {
	last := sc.trig.Status.LastFired
	if last != nil && last.ScheduleTime != nil && !last.ScheduleTime.Time.Before(t) {
		return
	}
	sc.trig.Status.LastFired = &cyclonev1alpha1.FiredRun{
		Name:         name,
		Time:         &metav1.Time{Time: sc.now},
		ScheduleTime: &metav1.Time{Time: t},
	}
}

// verdict is the concurrency policy's answer for one scheduled time.
type verdict int

const (
	// verdictStart: start the run.
	verdictStart verdict = iota
	// verdictSkip: the policy forbids the run.
	verdictSkip
	// verdictStarted: the run exists already, started by another replica
	// or by a reconcile that could not record it.
	verdictStarted
)

// admit applies the concurrency policy before run name of time t starts:
// Forbid refuses while a run of the trigger is going, Replace stops those
// runs first. Allow needs no look at the runs: creating the run answers
// whether it exists.
func (r *CronReconciler) admit(ctx context.Context, sc *cronScope, name string, t time.Time) (verdict, error) {
	trig := sc.trig
	policy := trig.Spec.Cron.ConcurrencyPolicy
	if policy == "" || policy == cyclonev1alpha1.ConcurrencyAllow {
		return verdictStart, nil
	}
	active, started, err := r.activeRuns(ctx, trig, name)
	if err != nil || started {
		return verdictStarted, err
	}
	if len(active) == 0 {
		return verdictStart, nil
	}
	if policy == cyclonev1alpha1.ConcurrencyForbid {
		r.event(trig, corev1.EventTypeNormal, ReasonForbidden,
			"Skipped %s: WorkflowRun %s is still running", t.UTC().Format(time.RFC3339), active[0].Name)
		return verdictSkip, nil
	}
	for i := range active {
		run := &active[i]
		if run.Spec.Stop {
			continue
		}
		patch := client.MergeFrom(run.DeepCopy())
		run.Spec.Stop = true
		if err := r.Client.Patch(ctx, run, patch); err != nil && !apierrors.IsNotFound(err) {
			return verdictSkip, fmt.Errorf("stop run %q: %w", run.Name, err)
		}
		r.event(trig, corev1.EventTypeNormal, ReasonReplaced,
			"Stopped WorkflowRun %s for the run of %s", run.Name, t.UTC().Format(time.RFC3339))
	}
	return verdictStart, nil
}

// activeRuns lists the runs of trig that have not finished, and reports
// whether run name is among all its runs.
func (r *CronReconciler) activeRuns(ctx context.Context, trig *cyclonev1alpha1.WorkflowTrigger, name string) ([]cyclonev1alpha1.WorkflowRun, bool, error) {
	var runs cyclonev1alpha1.WorkflowRunList
	if err := r.APIReader.List(ctx, &runs, client.InNamespace(trig.Namespace),
		client.MatchingLabels{convention.LabelTrigger: triggerLabel(trig.Name)}); err != nil {
		return nil, false, fmt.Errorf("list runs of trigger %q: %w", trig.Name, err)
	}
	var active []cyclonev1alpha1.WorkflowRun
	for _, run := range runs.Items {
		if run.Name == name {
			return nil, true, nil
		}
		if startedBy(&run, trig) && !convention.RunFinished(&run) {
			active = append(active, run)
		}
	}
	return active, false, nil
}

// event records one event on a trigger.
func (r *CronReconciler) event(trig *cyclonev1alpha1.WorkflowTrigger, eventType, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(trig, nil, eventType, reason, reason, format, args...)
	}
}

// catchUp is the effective catch-up policy of c.
func catchUp(c cyclonev1alpha1.CronTrigger) cyclonev1alpha1.CatchUpPolicy {
	if c.CatchUp == "" {
		return cyclonev1alpha1.CatchUpLatest
	}
	return c.CatchUp
}
