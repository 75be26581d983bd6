package exec

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
	"github.com/gyreops/gyre/internal/runlogs"
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
	// deliveries sends notifications of finished runs in the background.
	deliveries *deliveries
	// reconciles counts Reconcile calls, for tests and benchmarks.
	reconciles atomic.Int64
	// recorder records Events on WorkflowRuns; nil records none.
	recorder events.EventRecorder
	// logs keeps stage container logs before their Pods go; nil keeps
	// none.
	logs runlogs.Store
	// fault, when set, is called at the points where a crash would leave
	// the most partial state ("reconcile", "before-status-write",
	// "after-status-write", "before-pod-create", "after-pod-create"); an
	// error aborts the reconcile there. Tests use it to kill the engine
	// at each step.
	fault func(point string) error
}

// inject aborts at a fault point when a test asks for it.
func (r *Engine) inject(point string) error {
	if r.fault == nil {
		return nil
	}
	return r.fault(point)
}

// conflictRetry is how soon a run is looked at again after another writer
// changed it under us.
const conflictRetry = 100 * time.Millisecond

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
	run := &cyclonev1alpha1.WorkflowRun{}
	if err := r.client.Get(ctx, req.NamespacedName, run); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
			r.running.Delete(req.NamespacedName)
			r.deliveries.forget(req.NamespacedName)
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
	if after := run.Status.Overall.Phase; after != before && finished(after) {
		ctrl.LoggerFrom(ctx).Info("Run finished", "phase", after, "reason", run.Status.Overall.Reason)
	}
	if finished(run.Status.Overall.Phase) || !run.DeletionTimestamp.IsZero() {
		r.running.Delete(req.NamespacedName)
	}
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}

func (r *Engine) reconcile(ctx context.Context, s *scope) (ctrl.Result, error) {
	run := s.run
	if !run.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}
	if controllerutil.AddFinalizer(run, Finalizer) {
		if err := r.client.Update(ctx, run); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		r.written.Store(client.ObjectKeyFromObject(run), run.ResourceVersion)
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
		if !finished(run.Status.Overall.Phase) {
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
	if !finished(run.Status.Overall.Phase) {
		if err := r.progress(ctx, s); err != nil || !finished(run.Status.Overall.Phase) {
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
	if !finished(st.Overall.Phase) {
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
// dependencies are met, derive the overall phase, persist the status, and
// only then create and delete Pods. Because the status is written before
// any Pod is created, a Pod always belongs to an attempt the status
// already records.
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
	st := run.Status.DeepCopy()
	if st.Overall.Reason == ReasonWaitingForCluster || st.Overall.Reason == ReasonWaitingForObject {
		st.Overall.Reason, st.Overall.Message = "", "" // it is reachable now
	}
	if st.Stages == nil && s.target.pvc != "" {
		if err := r.checkPVC(ctx, s); err != nil {
			return r.waitOrFailOnPVC(ctx, s, err)
		}
	}
	if st.Stages == nil {
		if msg := r.start(s, st); msg != "" {
			return r.failRun(ctx, s, ReasonInvalidWorkflow, msg)
		}
	}
	pods, err := r.runPods(ctx, s, podKindWorkload)
	if err != nil {
		return err
	}
	missing := r.observe(s, st, pods)
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
	if !finished(st.Overall.Phase) {
		if create, err = r.schedule(ctx, s, st); err != nil {
			return err
		}
		for _, name := range missing {
			// Recorded in the status but not in the cache: created by an
			// earlier reconcile that did not see it yet, or never created
			// because that reconcile stopped. Create adopts either way.
			pod, err := r.buildPod(ctx, s, st, name)
			if err != nil {
				if !asInvalid(err, st.Stages[name], s.now) && !r.asWaiting(err, s, st.Stages[name]) {
					return err
				}
				continue
			}
			create = append(create, pod)
		}
		summarize(st, s.now)
	}
	if finished(st.Overall.Phase) && st.GC == nil && s.target.pvc != "" {
		// The run's end starts its GC in the same status write.
		now := metav1.NewTime(s.now)
		st.GC = &cyclonev1alpha1.GCStatus{Phase: cyclonev1alpha1.GCRunning, Attempt: 1, StartTime: &now}
	}
	if err := r.writeStatus(ctx, run, st); err != nil {
		return err
	}
	if err := r.createPods(ctx, s, create); err != nil {
		return err
	}
	if err := r.signalWorkloadEnds(ctx, s, pods); err != nil {
		return err
	}
	return r.deleteStrayPods(ctx, s, pods)
}

// start fixes what a run is made of: the selected stages with their
// dependencies, and the final values of the global variables. It returns
// a message when the Workflow cannot run.
func (r *Engine) start(s *scope, st *cyclonev1alpha1.WorkflowRunStatus) string {
	run, wf := s.run, s.workflow
	nodes, err := selectStages(wf.Spec.Stages, run.Spec.StartStages, run.Spec.EndStages)
	if err != nil {
		return fmt.Sprintf("workflow %s: %v", wf.Name, err)
	}
	if _, err := parseTimeout(run.Spec.Timeout); err != nil {
		return fmt.Sprintf("run timeout: %v", err)
	}
	for _, it := range wf.Spec.Stages {
		if _, err := parseTimeout(it.Timeout); err != nil {
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
	st.GlobalVariables = resolveVariables(wf.Spec.GlobalVariables, run.Spec.GlobalVariables, s.now, randomString)
	now := metav1.NewTime(s.now)
	transition(&st.Overall, cyclonev1alpha1.StatusRunning, "", "", s.now)
	st.Overall.StartTime = &now
	return ""
}

// failRun ends a run that cannot proceed as it is specified.
func (r *Engine) failRun(ctx context.Context, s *scope, reason, msg string) error {
	st := s.run.Status.DeepCopy()
	endStages(st, cyclonev1alpha1.StatusFailed, reason, msg, s.now)
	transition(&st.Overall, cyclonev1alpha1.StatusFailed, reason, msg, s.now)
	return r.writeStatus(ctx, s.run, st)
}

// observe folds the run's Pods into the stage statuses and returns the
// stages whose recorded Pod is missing and must be created.
func (r *Engine) observe(s *scope, st *cyclonev1alpha1.WorkflowRunStatus, pods map[string]*corev1.Pod) (missing []string) {
	for _, name := range sortedStages(st.Stages) {
		ss := st.Stages[name]
		if !active(ss) {
			continue
		}
		start := s.now
		if ss.Status.StartTime != nil {
			start = ss.Status.StartTime.Time
		}
		pod := pods[ss.Pod.Name]
		var state podState
		switch {
		case pod != nil:
			state = stateOfPod(pod, start, s.now, r.cfg.ImagePullGracePeriod)
			copyOutputs(ss, pod)
		case ss.Status.Phase == cyclonev1alpha1.StatusRunning:
			state = podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonPodDeleted,
				Message: fmt.Sprintf("pod %s disappeared while the stage was running", ss.Pod.Name)}
		default:
			missing = append(missing, name)
			state = podState{Phase: cyclonev1alpha1.StatusPending, Reason: ss.Status.Reason, Message: ss.Status.Message}
		}
		item := stageItem(s.workflow, name)
		if timeout, _ := parseTimeout(item.Timeout); timeout > 0 && !finished(state.Phase) {
			if deadline := start.Add(timeout); !s.now.Before(deadline) {
				state = podState{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonTimeout,
					Message: fmt.Sprintf("attempt %d exceeded the stage timeout of %s", ss.Attempt, item.Timeout)}
			} else {
				s.wakeAt(deadline)
			}
		}
		if !state.Deadline.IsZero() {
			s.wakeAt(state.Deadline)
		}
		if state.Phase == cyclonev1alpha1.StatusFailed {
			r.forgetRunning(s.run, ss.Pod.Name)
			r.failAttempt(s, ss, item, state)
			continue
		}
		if state.Phase == cyclonev1alpha1.StatusRunning && ss.Status.Phase != cyclonev1alpha1.StatusRunning {
			if report := r.seenRunning(s.run, pod.Name, s.now).Add(r.cfg.RunningReportDelay); s.now.Before(report) {
				s.wakeAt(report)
				continue
			}
		}
		r.forgetRunning(s.run, ss.Pod.Name)
		transition(&ss.Status, state.Phase, state.Reason, state.Message, s.now)
	}
	return missing
}

// seenRunning returns when the engine first saw the run's Pod named pod
// running. The Running report is held back from that moment, not from the
// attempt's start: under load a Pod may wait seconds for a node and then
// finish at once, and it should still cost one status write, not two. The
// moment is kept in memory only, and dropped when the run finishes; after a
// restart the wait starts again, which delays a report by at most
// RunningReportDelay. Reconciles of one run never overlap, so its map
// needs no lock.
func (r *Engine) seenRunning(run *cyclonev1alpha1.WorkflowRun, pod string, now time.Time) time.Time {
	v, _ := r.running.LoadOrStore(client.ObjectKeyFromObject(run), map[string]time.Time{})
	seen := v.(map[string]time.Time)
	t, ok := seen[pod]
	if !ok {
		t = now
		seen[pod] = t
	}
	return t
}

// forgetRunning drops what seenRunning keeps of a Pod.
func (r *Engine) forgetRunning(run *cyclonev1alpha1.WorkflowRun, pod string) {
	if v, ok := r.running.Load(client.ObjectKeyFromObject(run)); ok {
		delete(v.(map[string]time.Time), pod)
	}
}

// failAttempt fails a stage's current attempt: the stage waits for its
// next attempt while retries are left, and fails otherwise.
func (r *Engine) failAttempt(s *scope, ss *cyclonev1alpha1.StageStatus, item cyclonev1alpha1.StageItem, state podState) {
	if ss.Attempt > item.Retries {
		transition(&ss.Status, cyclonev1alpha1.StatusFailed, state.Reason, state.Message, s.now)
		return
	}
	next := ss.Attempt + 1
	at := s.now.Add(r.cfg.retryBackoff(next))
	transition(&ss.Status, cyclonev1alpha1.StatusPending, ReasonRetrying,
		fmt.Sprintf("attempt %d failed: %s: %s; attempt %d of %d starts at %s",
			ss.Attempt, state.Reason, state.Message, next, item.Retries+1, at.UTC().Format(time.RFC3339)), s.now)
	ss.Attempt, ss.Pod = next, nil
	t := metav1.NewTime(at)
	ss.NextAttemptTime = &t
	s.wakeAt(at)
}

// runTimedOut reports whether the run has run out of time, and otherwise
// asks to be woken when it will.
func (r *Engine) runTimedOut(s *scope, st *cyclonev1alpha1.WorkflowRunStatus) bool {
	timeout, _ := parseTimeout(s.run.Spec.Timeout)
	if timeout <= 0 || st.Overall.StartTime == nil {
		return false
	}
	deadline := st.Overall.StartTime.Add(timeout)
	if s.now.Before(deadline) {
		s.wakeAt(deadline)
		return false
	}
	return true
}

// writeStatus persists st as the run's status if it changed. The update
// carries the run's resourceVersion, so a write based on an outdated run
// fails with a conflict instead of overwriting newer progress.
func (r *Engine) writeStatus(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, st *cyclonev1alpha1.WorkflowRunStatus) error {
	st.ObservedGeneration = run.Generation
	if equality.Semantic.DeepEqual(&run.Status, st) {
		return nil
	}
	updated := run.DeepCopy()
	updated.Status = *st
	if err := r.inject("before-status-write"); err != nil {
		return err
	}
	if err := r.client.Status().Update(ctx, updated); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	old := run.Status
	*run = *updated
	r.recordTransitions(run, &old)
	r.observeTransitions(run, &old)
	r.written.Store(client.ObjectKeyFromObject(run), run.ResourceVersion)
	return r.inject("after-status-write")
}

// runPods returns the run's Pods of one kind in its target, by name.
func (r *Engine) runPods(ctx context.Context, s *scope, kind string) (map[string]*corev1.Pod, error) {
	list := &corev1.PodList{}
	if err := s.target.client.List(ctx, list, client.InNamespace(s.target.namespace),
		client.MatchingLabels{LabelRunUID: string(s.run.UID), LabelPodKind: kind}); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	pods := make(map[string]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[list.Items[i].Name] = &list.Items[i]
	}
	return pods, nil
}

// targetOf returns where the run's Pods live: the worker namespace and
// PVC of the Tenant owning the run's namespace, on the cluster its
// executionContext names among the Tenant's. A run outside every Tenant,
// or whose executionContext or serviceAccount points elsewhere, gets a
// *refusedError: where a run executes is gyre's to choose, not the run's.
func (r *Engine) targetOf(ctx context.Context, run *cyclonev1alpha1.WorkflowRun) (*target, error) {
	tn, err := r.tenantOf(ctx, run.Namespace)
	if err != nil {
		return nil, err
	}
	if err := r.checkExecutionContext(run, tn); err != nil {
		return nil, err
	}
	level, err := podsecurity.ParseLevel(tn.Spec.PodSecurity)
	if err != nil {
		// The CRD's enum keeps this out; should it slip through, the
		// strictest level errs on the safe side.
		level = podsecurity.Restricted
	}
	c, err := r.clusters.get(ctx, clusterName(run))
	if err != nil {
		return nil, err
	}
	var pods corev1client.PodsGetter
	if r.logs != nil {
		if pods, err = c.podsClient(); err != nil {
			return nil, fmt.Errorf("pods/log client: %w", err)
		}
	}
	return &target{
		pods:      pods,
		client:    c.cluster.GetClient(),
		live:      c.cluster.GetAPIReader(),
		namespace: r.cfg.WorkerNamespace(tn.Name),
		pvc:       r.cfg.PVCName(tn.Name),
		level:     level,
	}, nil
}

// Reasons a run is refused before anything of it is created.
const (
	// ReasonNoTenant: the run's namespace belongs to no Tenant.
	ReasonNoTenant = "NoTenant"
	// ReasonExecutionContextRefused: the run asks for a cluster,
	// namespace, PVC or ServiceAccount gyre did not assign its tenant.
	ReasonExecutionContextRefused = "ExecutionContextRefused"
	// ReasonPodSecurity: a Pod would break its Tenant's Pod Security level.
	ReasonPodSecurity = "PodSecurity"
)

// refusedError says a run, or one of its Pods, may not execute as
// specified; only a change to its spec or to its Tenant helps.
type refusedError struct{ reason, msg string }

func (e *refusedError) Error() string { return e.msg }

func refused(reason, format string, args ...any) error {
	return &refusedError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// tenantOf returns the Tenant owning the control-cluster namespace ns,
// "cyclone-<tenant>". The cache may not have a Tenant created a moment
// ago, so a miss is confirmed with the API server before the run is
// refused for it.
func (r *Engine) tenantOf(ctx context.Context, ns string) (*gyrev1alpha1.Tenant, error) {
	noTenant := func() error {
		return refused(ReasonNoTenant, "namespace %s belongs to no Tenant: gyre runs WorkflowRuns only in tenant namespaces cyclone-<tenant>", ns)
	}
	name, ok := strings.CutPrefix(ns, "cyclone-")
	if !ok || name == "" {
		return nil, noTenant()
	}
	tn := &gyrev1alpha1.Tenant{}
	err := r.client.Get(ctx, types.NamespacedName{Name: name}, tn)
	if apierrors.IsNotFound(err) {
		err = r.live.Get(ctx, types.NamespacedName{Name: name}, tn)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, noTenant()
	case err != nil:
		return nil, fmt.Errorf("get tenant %s: %w", name, err)
	case !tn.DeletionTimestamp.IsZero():
		return nil, refused(ReasonNoTenant, "namespace %s belongs to Tenant %s, which is being deleted", ns, name)
	}
	return tn, nil
}

// checkExecutionContext refuses a run whose spec.executionContext or
// spec.serviceAccount names anything but what gyre assigned its Tenant:
// the worker namespace, the tenant PVC, one of the Tenant's clusters, and
// a ServiceAccount of the worker namespace other than gyre's own.
func (r *Engine) checkExecutionContext(run *cyclonev1alpha1.WorkflowRun, tn *gyrev1alpha1.Tenant) error {
	if ec := run.Spec.ExecutionContext; ec != nil {
		if want := r.cfg.WorkerNamespace(tn.Name); ec.Namespace != "" && ec.Namespace != want {
			return refused(ReasonExecutionContextRefused, "spec.executionContext.namespace %q: runs of tenant %s run only in namespace %s", ec.Namespace, tn.Name, want)
		}
		if want := r.cfg.PVCName(tn.Name); ec.PVC != "" && ec.PVC != want {
			return refused(ReasonExecutionContextRefused, "spec.executionContext.pvc %q: runs of tenant %s use only PVC %q", ec.PVC, tn.Name, want)
		}
		if allowed := tenantClusters(tn); !slices.Contains(allowed, ec.Cluster) {
			return refused(ReasonExecutionContextRefused, "spec.executionContext.cluster %q is not a cluster of tenant %s (%s)", ec.Cluster, tn.Name, describeClusters(allowed))
		}
	} else if !slices.Contains(tenantClusters(tn), "") {
		return refused(ReasonExecutionContextRefused, "spec.executionContext.cluster is empty, the control cluster, which is not a cluster of tenant %s (%s)", tn.Name, describeClusters(tenantClusters(tn)))
	}
	if sa := run.Spec.ServiceAccount; sa != "" {
		if msg := r.serviceAccountProblem(sa); msg != "" {
			return refused(ReasonExecutionContextRefused, "spec.serviceAccount %q: %s", sa, msg)
		}
	}
	return nil
}

// serviceAccountProblem says why a stage Pod may not run as the
// ServiceAccount name, or "" if it may. A plain name is one of the worker
// namespace; gyre's own account may not be borrowed.
func (r *Engine) serviceAccountProblem(name string) string {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "must be the plain name of a ServiceAccount in the worker namespace"
	}
	if name == r.cfg.ControllerServiceAccount {
		return "gyre's own ServiceAccount may not run stages"
	}
	return ""
}

// tenantClusters lists the ExecutionClusters a Tenant's runs may name,
// "" standing for the control cluster: a Tenant without clusters runs
// there, and so does a cluster entry without executionClusterRef.
func tenantClusters(tn *gyrev1alpha1.Tenant) []string {
	if len(tn.Spec.Clusters) == 0 {
		return []string{""}
	}
	out := make([]string, 0, len(tn.Spec.Clusters))
	for _, c := range tn.Spec.Clusters {
		name := ""
		if c.ExecutionClusterRef != nil {
			name = c.ExecutionClusterRef.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func describeClusters(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
		if n == "" {
			quoted[i] = `"" (the control cluster)`
		}
	}
	return "allowed: " + strings.Join(quoted, ", ")
}

// checkPod refuses a Pod, just before it is created, that runs as a
// ServiceAccount it may not, or breaks the Pod Security level of the run's
// Tenant. Stages and runs created through the API never went through
// render's checks, so this is where the promise is kept.
func (r *Engine) checkPod(s *scope, pod *corev1.Pod) error {
	if sa := pod.Spec.ServiceAccountName; sa != "" {
		if msg := r.serviceAccountProblem(sa); msg != "" {
			return refused(ReasonExecutionContextRefused, "pod %s: serviceAccountName %q: %s", pod.Name, sa, msg)
		}
	}
	if pod.Namespace != s.target.namespace {
		return refused(ReasonExecutionContextRefused, "pod %s: namespace %q is not the worker namespace %s", pod.Name, pod.Namespace, s.target.namespace)
	}
	if v := podsecurity.Check(s.target.level, &pod.ObjectMeta, &pod.Spec); len(v) > 0 {
		return refused(ReasonPodSecurity, "pod %s %s", pod.Name, podsecurity.Error(s.target.level, v))
	}
	return nil
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

// parseTimeout parses a Go duration; empty means none.
func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if m := cycloneDurationRe.FindStringSubmatch(strings.ToLower(s)); m != nil {
		// Cyclone's own spelling: "30min", "2hour", "1h30m", "45second".
		var d time.Duration
		for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
			if m[i+1] != "" {
				n, err := strconv.Atoi(m[i+1])
				if err != nil {
					return 0, fmt.Errorf("timeout %q: %w", s, err)
				}
				d += time.Duration(n) * unit
			}
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative duration %q", s)
	}
	return d, err
}

// cycloneDurationRe matches the durations Cyclone's workflow controller
// reads: hours, minutes and seconds in that order, each optional, as
// "h" or "hour", "m" or "min", "s" or "second".
var cycloneDurationRe = regexp.MustCompile(`^(?:(\d+)h(?:our)?)?(?:(\d+)m(?:in)?)?(?:(\d+)s(?:econd)?)?$`)

const randomAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n random lower-case letters and digits, usable in
// names and tags.
func randomString(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(randomAlphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = randomAlphabet[k.Int64()]
	}
	return string(b)
}
