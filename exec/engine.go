package exec

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/gc"
	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/exec/template"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/runlogs"
	"github.com/gyreops/gyre/internal/status"
)

// Engine reconciles WorkflowRuns. Create it with a Config and register it
// with SetupWithManager.
type Engine struct {
	// Config configures the engine; read once by SetupWithManager.
	Config Config

	cfg Config
	// client reads Cyclone objects from the manager's cache and writes to
	// the control cluster.
	client client.Client
	// live reads WorkflowRuns from the API server when the cache has not
	// caught up with the engine's own last write (see written).
	live     client.Reader
	clusters *clusterSet
	// written maps each run to the resourceVersion of the engine's last
	// write to it. A cached run with another version is older than that
	// write, or newer from another writer; either way it is read live, so
	// that no decision is taken on a run older than what the engine
	// itself wrote.
	written sync.Map // types.NamespacedName → string
	// running maps each unfinished run to its stage Pods seen running
	// whose Running phase is not reported yet, and when each was first
	// seen so (see seenRunning).
	running sync.Map // types.NamespacedName → map[string]time.Time
	// unreported maps each run whose status write is held back to the
	// time of the first change held (see holdBack).
	unreported sync.Map // types.NamespacedName → time.Time
	// ending maps each run whose end is held back while its GC Pod runs
	// to the time the engine first found it ended (see foldGC).
	ending sync.Map // types.NamespacedName → time.Time
	// swept maps each finished run whose Pods this process has deleted,
	// or found gone, to its UID (see sweep).
	swept sync.Map // types.NamespacedName → types.UID
	// expected holds the Pods created and not in the cache yet.
	expected podExpectations
	// gcPace follows how long GC Pods take (see foldGC).
	gcPace gcPace
	// load counts the tenants' active stages for TenantParallelism.
	load *tenantLoad
	// inProgress holds the runs in progress, whose number stretches the
	// status report delay (see reportDelay).
	inProgress runSet
	// boundPVCs maps each tenant PVC ("cluster/namespace/name") found
	// bound to when it was (see checkPVC).
	boundPVCs sync.Map // string → time.Time
	// deliveries sends notifications of finished runs and delegation
	// requests in the background, through sender.
	deliveries *notify.Queue
	sender     *notify.Sender
	// reconciles counts Reconcile calls, for tests and benchmarks.
	reconciles atomic.Int64
	// recorder records Events on WorkflowRuns; nil records none.
	recorder events.EventRecorder
	// logs keeps stage container logs before their Pods go; nil keeps
	// none. keeper reads and stores them.
	logs   runlogs.Store
	keeper gc.Logs
	// builder builds stage Pods and gcPods GC Pods, from cfg.
	builder podbuild.Builder
	gcPods  gc.PodConfig
	// fault, when set, is called at the points where a crash would leave
	// the most partial state ("reconcile", "before-status-write",
	// "after-status-write", "before-pod-create", "after-pod-create"); an
	// error aborts the reconcile there. Tests use it to kill the engine
	// at each step.
	fault func(point string) error
	// reconciled, when set, is told of every Reconcile call: tests count
	// one run's reconciles with it, whatever else the engine sees.
	reconciled func(types.NamespacedName)
}

// inject aborts at a fault point when a test asks for it.
func (r *Engine) inject(point string) error {
	if r.fault == nil {
		return nil
	}
	return r.fault(point)
}

// scope is one reconcile of one run.
type scope struct {
	run *cyclonev1alpha1.WorkflowRun
	// target is where the run's Pods live; filled after the run is known.
	target *target
	// workflow is the run's Workflow; filled by progress.
	workflow *cyclonev1alpha1.Workflow
	// secrets are the run Secrets of the stage Pods buildPod built, by
	// Pod name, for createPod to create first.
	secrets map[string]*corev1.Secret
	now     time.Time
	// round is the status the round computes, once it differs from the
	// run's written status: the Pods it creates may be written after
	// them (see progress).
	round *cyclonev1alpha1.WorkflowRunStatus
	// writeNow says a step recorded what must not wait for a later
	// write (see holdBack).
	writeNow bool
	// capped says TenantParallelism held back a stage of the round.
	capped bool
	// requeue is the earliest time the run must be looked at again
	// without any event; zero means never.
	requeue time.Time
}

// wakeAt asks for a reconcile at t at the latest.
func (s *scope) wakeAt(t time.Time) {
	if s.requeue.IsZero() || t.Before(s.requeue) {
		s.requeue = t
	}
}

func (s *scope) result() ctrl.Result {
	if s.requeue.IsZero() {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: max(s.requeue.Sub(s.now), time.Millisecond)}
}

// Reconcile moves one WorkflowRun forward: start, schedule stages, observe
// their Pods, finish, notify, collect garbage, or clean up after deletion.
func (r *Engine) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.reconciles.Add(1)
	if r.reconciled != nil {
		r.reconciled(req.NamespacedName)
	}
	if ours, err := r.inShard(ctx, req.NamespacedName); !ours || err != nil {
		return ctrl.Result{}, err
	}
	run := &cyclonev1alpha1.WorkflowRun{}
	if err := r.client.Get(ctx, req.NamespacedName, run); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
			r.running.Delete(req.NamespacedName)
			r.unreported.Delete(req.NamespacedName)
			r.ending.Delete(req.NamespacedName)
			r.inProgress.remove(req.NamespacedName)
			r.load.forget(req.NamespacedName)
			r.swept.Delete(req.NamespacedName)
			r.expected.forgetRun(req.NamespacedName)
			r.deliveries.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if v, ok := r.written.Load(req.NamespacedName); ok && v.(string) != run.ResourceVersion {
		if err := r.live.Get(ctx, req.NamespacedName, run); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if err := r.inject("reconcile"); err != nil {
		return ctrl.Result{}, err
	}
	s := &scope{run: run, now: r.cfg.Clock.Now()}
	before := run.Status.Overall.Phase
	res, err := r.reconcile(ctx, s)
	if after := run.Status.Overall.Phase; after != before && convention.Finished(after) {
		ctrl.LoggerFrom(ctx).Info("Run finished", "phase", after, "reason", run.Status.Overall.Reason)
	}
	if convention.Finished(run.Status.Overall.Phase) || !run.DeletionTimestamp.IsZero() {
		r.running.Delete(req.NamespacedName)
		r.ending.Delete(req.NamespacedName)
		r.inProgress.remove(req.NamespacedName)
		r.expected.forgetRun(req.NamespacedName)
		if r.cfg.TenantParallelism > 0 {
			r.load.record(run, &run.Status, false) // none active, whatever the cache says yet
		}
	}
	return status.OnConflict(res, err)
}

func (r *Engine) reconcile(ctx context.Context, s *scope) (ctrl.Result, error) {
	run := s.run
	if !run.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}
	if err := r.writeFinalizer(ctx, run, controllerutil.AddFinalizer); err != nil {
		return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
	}
	var err error
	s.target, err = r.targetOf(ctx, run)
	if err != nil {
		var refusal *refusedError
		if errors.As(err, &refusal) {
			return r.failRefused(ctx, s, refusal)
		}
		if errors.Is(err, errClusterNotFound) {
			return r.failWithoutCluster(ctx, s, err)
		}
		// Unreachable or misconfigured: say so on the run while retrying.
		if !convention.Finished(run.Status.Overall.Phase) {
			st := run.Status.DeepCopy()
			if st.Overall.Phase == "" {
				st.Overall.Phase = cyclonev1alpha1.StatusPending
			}
			st.Overall.Reason, st.Overall.Message = ReasonWaitingForCluster, err.Error()
			if werr := r.writeStatus(ctx, run, st); werr != nil {
				return ctrl.Result{}, werr
			}
		}
		return ctrl.Result{}, err
	}
	if !convention.Finished(run.Status.Overall.Phase) {
		if err := r.progress(ctx, s); err != nil || !convention.Finished(run.Status.Overall.Phase) {
			return s.result(), err
		}
	}
	if err := r.finish(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	return s.result(), nil
}

// failWithoutCluster ends a run whose execution cluster does not exist:
// nothing ran, so there is nothing to clean either.
func (r *Engine) failWithoutCluster(ctx context.Context, s *scope, cause error) (ctrl.Result, error) {
	st := s.run.Status.DeepCopy()
	endStages(st, cyclonev1alpha1.StatusFailed, ReasonClusterNotFound, cause.Error(), s.now)
	transition(&st.Overall, cyclonev1alpha1.StatusFailed, ReasonClusterNotFound, cause.Error(), s.now)
	st.Cleaned = true
	return ctrl.Result{}, r.writeStatus(ctx, s.run, st)
}

// failRefused ends a run gyre will not execute where or as it asks. Its
// target is not gyre's, so nothing is cleaned there: a run refused at its
// start never created anything, and what a run changed mid-way left
// behind stays in the worker namespace, which the Tenant's removal
// deletes. A run that has finished already keeps its status.
func (r *Engine) failRefused(ctx context.Context, s *scope, refusal *refusedError) (ctrl.Result, error) {
	st := s.run.Status.DeepCopy()
	if !convention.Finished(st.Overall.Phase) {
		endStages(st, cyclonev1alpha1.StatusFailed, refusal.reason, refusal.msg, s.now)
		transition(&st.Overall, cyclonev1alpha1.StatusFailed, refusal.reason, refusal.msg, s.now)
	}
	st.Cleaned = true
	if st.GC != nil && st.GC.Phase == cyclonev1alpha1.GCRunning {
		st.GC.Phase, st.GC.Message = cyclonev1alpha1.GCFailed, refusal.msg
	}
	return ctrl.Result{}, r.writeStatus(ctx, s.run, st)
}

// progress runs one round of the run's state machine: start it if new,
// observe stage Pods, apply stop and timeouts, start stages whose
// dependencies are met, derive the overall phase, create the Pods of the
// new attempts, persist the status, and delete stray Pods.
//
// The run's start is written before its first Pod exists: the global
// variables it fixes are random and timed, and every Pod must see the
// same. After that, a stage's Pod is created before its attempt is
// written, so that a stage whose dependencies are met waits on one API
// call, not two. That is safe because a stage attempt's Pod has a name
// that follows from the run, the stage and the attempt: a round that
// finds its attempt unrecorded (the write held back, lost to a restart or
// to a conflict) schedules the same attempt again and adopts its Pod, by
// the cache or by the create's AlreadyExists.
func (r *Engine) progress(ctx context.Context, s *scope) error {
	run := s.run
	wf := &cyclonev1alpha1.Workflow{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: workflowName(run)}, wf); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get workflow %s: %w", workflowName(run), err)
		}
		return r.waitForWorkflow(ctx, s)
	}
	s.workflow = wf
	r.inProgress.add(client.ObjectKeyFromObject(run))
	st := run.Status.DeepCopy()
	if st.Overall.Reason == ReasonWaitingForCluster || st.Overall.Reason == ReasonWaitingForObject {
		st.Overall.Reason, st.Overall.Message = "", "" // it is reachable now
	}
	pods, err := r.runPods(ctx, s, convention.PodKindWorkload)
	if err != nil {
		return err
	}
	// A run with Pods found its PVC already, in a round whose start was
	// held back.
	if st.Stages == nil && s.target.pvc != "" && len(pods) == 0 {
		if err := r.checkPVC(ctx, s); err != nil {
			return r.waitOrFailOnPVC(ctx, s, err)
		}
	}
	starting := st.Stages == nil
	if starting {
		if msg := r.start(s, st); msg != "" {
			return r.failRun(ctx, s, ReasonInvalidWorkflow, msg)
		}
	}
	missing := r.observe(s, st, pods)
	if run.Spec.Stop || r.runTimedOut(s, st) {
		missing = r.adoptHeld(s, st, pods, missing)
	}
	switch {
	case run.Spec.Stop:
		msg := "the run was stopped"
		endStages(st, cyclonev1alpha1.StatusCancelled, cyclonev1alpha1.ReasonManuallyStop, msg, s.now)
		transition(&st.Overall, cyclonev1alpha1.StatusCancelled, cyclonev1alpha1.ReasonManuallyStop, msg, s.now)
	case r.runTimedOut(s, st):
		msg := fmt.Sprintf("the run exceeded its timeout of %s", run.Spec.Timeout)
		endStages(st, cyclonev1alpha1.StatusFailed, ReasonTimeout, msg, s.now)
		transition(&st.Overall, cyclonev1alpha1.StatusFailed, ReasonTimeout, msg, s.now)
	}
	var create []*corev1.Pod
	if !convention.Finished(st.Overall.Phase) {
		var err error
		if r.cfg.TenantParallelism > 0 {
			unlock := r.load.lock(run.Namespace)
			if create, err = r.scheduleAll(ctx, s, st, pods, missing); err == nil {
				r.load.record(run, st, s.capped)
			}
			unlock()
		} else {
			create, err = r.scheduleAll(ctx, s, st, pods, missing)
		}
		if err != nil {
			return err
		}
		summarize(st, s.now)
	}
	if convention.Finished(st.Overall.Phase) && st.GC == nil && s.target.pvc != "" {
		if stop, err := r.foldGC(ctx, s, st, starting, pods); err != nil || stop {
			return err
		}
		if st.GC == nil {
			// The run's end starts its GC in the same status write.
			now := metav1.NewTime(s.now)
			st.GC = &cyclonev1alpha1.GCStatus{Phase: cyclonev1alpha1.GCRunning, Attempt: 1, StartTime: &now}
		}
	}
	if starting && r.drawsVariables(s) || convention.Finished(st.Overall.Phase) {
		// The values drawn for the run's global variables are written
		// before any Pod sees them, and what follows the end of a run
		// reads its written status.
		if err := r.writeStatus(ctx, run, st); err != nil {
			return err
		}
		refused := run.Status.DeepCopy()
		if changed, err := r.createPods(ctx, s, refused, create); err != nil {
			return err
		} else if changed {
			if err := r.writeStatus(ctx, run, refused); err != nil {
				return err
			}
		}
		st = run.Status.DeepCopy()
	} else {
		changed, err := r.createPods(ctx, s, st, create)
		if err != nil {
			return err
		}
		if changed || !r.holdBack(s, st) {
			if err := r.writeStatus(ctx, run, st); err != nil {
				return err
			}
		}
	}
	if r.cfg.TenantParallelism > 0 {
		r.load.record(run, st, s.capped) // less than recorded when a create was refused
	}
	if err := r.signalWorkloadEnds(ctx, s, pods); err != nil {
		return err
	}
	return r.deleteStrayPods(ctx, s, st, pods)
}

// scheduleAll starts the stages that may start in this round, adopting
// what earlier rounds created unrecorded, and returns the Pods to create,
// those of the stages in missing included.
func (r *Engine) scheduleAll(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, pods map[string]*corev1.Pod, missing []string) ([]*corev1.Pod, error) {
	var create []*corev1.Pod
	for {
		more, adopted, err := r.schedule(ctx, s, st, pods)
		if err != nil {
			return nil, err
		}
		create = append(create, more...)
		if !adopted {
			break
		}
		// The adopted attempts' Pods may have gone further, and what
		// follows them may start in this round.
		for _, name := range r.observe(s, st, pods) {
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	for _, name := range missing {
		// Recorded in the status but not in the cache: created by an
		// earlier reconcile that did not see it yet, or never created
		// because that reconcile stopped. Create adopts either way.
		pod, err := r.buildPod(ctx, s, st, name)
		if err != nil {
			if !asInvalid(err, st.Stages[name], s.now) && !r.asWaiting(err, s, st.Stages[name]) {
				return nil, err
			}
			continue
		}
		create = append(create, pod)
	}
	return create, nil
}

// holdBack reports whether the status of a run in progress, changed by
// the round, may wait: it does, for at most reportDelay from the
// first change it holds, so that stages that follow one another quickly
// cost one status write, not one each. The round's Pods exist already,
// and a later round derives the same attempts again and adopts them (see
// progress). Not with a TenantParallelism, which counts the attempts
// other runs' statuses record, nor when a delegation stage changed: its
// outcome is taken from the delivery queue once, and must be written.
func (r *Engine) holdBack(s *scope, st *cyclonev1alpha1.WorkflowRunStatus) bool {
	if s.writeNow || r.cfg.RunningReportDelay <= 0 || r.cfg.TenantParallelism > 0 {
		return false
	}
	st.ObservedGeneration = s.run.Generation
	if equality.Semantic.DeepEqual(&s.run.Status, st) {
		return false // nothing to write
	}
	since, _ := r.unreported.LoadOrStore(client.ObjectKeyFromObject(s.run), s.now)
	due := since.(time.Time).Add(r.reportDelay())
	if !s.now.Before(due) {
		return false
	}
	s.wakeAt(due)
	return true
}

// start fixes what a run is made of: the selected stages with their
// dependencies, and the final values of the global variables. It returns
// a message when the Workflow cannot run.
func (r *Engine) start(s *scope, st *cyclonev1alpha1.WorkflowRunStatus) string {
	run, wf := s.run, s.workflow
	nodes, err := convention.SelectStages(wf.Spec.Stages, run.Spec.StartStages, run.Spec.EndStages)
	if err != nil {
		return fmt.Sprintf("workflow %s: %v", wf.Name, err)
	}
	if _, err := convention.ParseTimeout(run.Spec.Timeout); err != nil {
		return fmt.Sprintf("run timeout: %v", err)
	}
	for _, it := range wf.Spec.Stages {
		if _, err := convention.ParseTimeout(it.Timeout); err != nil {
			return fmt.Sprintf("workflow %s: stage %s timeout: %v", wf.Name, it.Name, err)
		}
	}
	st.Stages = make(map[string]*cyclonev1alpha1.StageStatus, len(nodes))
	for _, n := range nodes {
		st.Stages[n.Name] = &cyclonev1alpha1.StageStatus{
			Depends: n.Depends,
			Trivial: n.Trivial,
			Status:  cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusPending},
		}
	}
	st.GlobalVariables = template.ResolveVariables(wf.Spec.GlobalVariables, run.Spec.GlobalVariables, s.now, template.RandomString)
	// A start held back with the round's status (see drawsVariables)
	// is derived again by the next round: it keeps the first one's time.
	start := s.now
	if since, ok := r.unreported.Load(client.ObjectKeyFromObject(run)); ok && !since.(time.Time).Before(run.CreationTimestamp.Time) {
		start = since.(time.Time)
	}
	now := metav1.NewTime(start)
	transition(&st.Overall, cyclonev1alpha1.StatusRunning, "", "", start)
	st.Overall.StartTime = &now
	return ""
}

// drawsVariables reports whether the run's start draws values for its
// global variables ("$(random:N)", "$(timenow)"): then the start is
// written before the first Pod, as every Pod must see the same values.
// Otherwise the start is what any round derives again from the run and
// its Workflow, and it is written with the first stages' progress,
// which may be held back (see holdBack): a run costs one status write
// less. Until then a new run shows no status; its first Pods exist.
func (r *Engine) drawsVariables(s *scope) bool {
	for _, vars := range [][]cyclonev1alpha1.GlobalVariable{s.workflow.Spec.GlobalVariables, s.run.Spec.GlobalVariables} {
		for _, v := range vars {
			if template.Generated(v.Value) {
				return true
			}
		}
	}
	return false
}

// failRun ends a run that cannot proceed as it is specified.
func (r *Engine) failRun(ctx context.Context, s *scope, reason, msg string) error {
	st := s.run.Status.DeepCopy()
	endStages(st, cyclonev1alpha1.StatusFailed, reason, msg, s.now)
	transition(&st.Overall, cyclonev1alpha1.StatusFailed, reason, msg, s.now)
	return r.writeStatus(ctx, s.run, st)
}

// runPods returns the run's Pods of one kind in its target, by name.
func (r *Engine) runPods(ctx context.Context, s *scope, kind string) (map[string]*corev1.Pod, error) {
	list := &corev1.PodList{}
	if err := s.target.client.List(ctx, list, client.InNamespace(s.target.namespace),
		client.MatchingLabels{convention.LabelRunUID: string(s.run.UID), convention.LabelPodKind: kind}); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	pods := make(map[string]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[list.Items[i].Name] = &list.Items[i]
		r.expected.observed(client.ObjectKeyFromObject(&list.Items[i]))
	}
	return pods, nil
}

func workflowName(run *cyclonev1alpha1.WorkflowRun) string {
	if run.Spec.WorkflowRef == nil {
		return ""
	}
	return run.Spec.WorkflowRef.Name
}

func clusterName(run *cyclonev1alpha1.WorkflowRun) string {
	if run.Spec.ExecutionContext == nil {
		return ""
	}
	return run.Spec.ExecutionContext.Cluster
}

func stageItem(wf *cyclonev1alpha1.Workflow, name string) cyclonev1alpha1.StageItem {
	for _, it := range wf.Spec.Stages {
		if it.Name == name {
			return it
		}
	}
	return cyclonev1alpha1.StageItem{Name: name}
}
