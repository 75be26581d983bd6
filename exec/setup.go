package exec

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/exec/gc"
	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/record"
)

// The engine's permissions, for controller-gen's RBAC generator.
//
// +kubebuilder:rbac:groups=cyclone.dev,resources=workflowruns,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=cyclone.dev,resources=workflowruns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=cyclone.dev,resources=workflows;stages;resources;projects;executionclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=gyre.dev,resources=tenants,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get;list
// +kubebuilder:rbac:groups="",resources=persistentvolumes,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the engine with mgr: a controller for
// WorkflowRuns that also watches the engine's Pods on the control cluster
// and on every ExecutionCluster, and a controller that connects to
// ExecutionClusters as they appear. Pods are cached through label-filtered
// caches of the engine's own, so other Pods cost nothing.
func (r *Engine) SetupWithManager(mgr ctrl.Manager) error {
	r.cfg = r.Config.withDefaults()
	r.client = mgr.GetClient()
	r.live = mgr.GetAPIReader()
	r.deliveries = notify.NewQueue()
	r.sender = &notify.Sender{HTTP: r.cfg.HTTPClient, SMTP: r.cfg.SMTP, SlackToken: r.cfg.SlackToken, SlackAPIURL: r.cfg.SlackAPIURL, Clock: r.cfg.Clock}
	r.logs = r.cfg.Logs
	r.keeper = gc.Logs{Store: r.cfg.Logs, Timeout: r.cfg.LogTimeout, MaxBytes: r.cfg.LogMaxBytes}
	r.builder = r.cfg.podBuilder()
	r.gcPods = gc.PodConfig{Image: r.cfg.GCImage, Labels: r.cfg.GCPodLabels, Annotations: r.cfg.GCPodAnnotations, Resources: r.cfg.GCResources}
	r.recorder = record.Distinct(mgr.GetEventRecorder("gyre-exec"))
	r.load = newTenantLoad()

	control, err := newPodCluster(mgr.GetConfig(), mgr.GetScheme())
	if err != nil {
		return fmt.Errorf("control cluster pod cache: %w", err)
	}
	if err := mgr.Add(control); err != nil {
		return err
	}
	r.clusters = &clusterSet{
		scheme:  mgr.GetScheme(),
		secrets: mgr.GetAPIReader(),
		limits:  mgr.GetConfig(),
		control: &conn{cluster: control},
		watch:   r.podSource,
		clock:   r.cfg.Clock,
	}
	if err := mgr.Add(r.clusters); err != nil {
		return err
	}
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("workflowrun").
		For(&cyclonev1alpha1.WorkflowRun{}, builder.WithPredicates(runChanged())).
		WatchesRawSource(r.podSource(control)).
		Watches(&gyrev1alpha1.Tenant{}, handler.EnqueueRequestsFromMapFunc(r.runsOfTenant),
			builder.WithPredicates(tenantChanged())).
		WatchesRawSource(r.deliveries.Source()).
		WatchesRawSource(r.load.source()).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.cfg.MaxConcurrentReconciles}).
		Build(r)
	if err != nil {
		return err
	}
	r.clusters.mu.Lock()
	r.clusters.ctrl = c
	r.clusters.mu.Unlock()
	return ctrl.NewControllerManagedBy(mgr).
		Named("executioncluster").
		For(&cyclonev1alpha1.ExecutionCluster{}).
		Complete(&clusterReconciler{clusters: r.clusters})
}

// runsOfTenant enqueues the unfinished runs of a Tenant whose spec or
// existence changed: a run refused for want of its Tenant, or waiting on
// its level, is looked at again.
func (r *Engine) runsOfTenant(ctx context.Context, o client.Object) []reconcile.Request {
	list := &cyclonev1alpha1.WorkflowRunList{}
	if err := r.client.List(ctx, list, client.InNamespace(convention.Namespace(o.GetName())), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the runs of a tenant", "Tenant", klog.KObj(o))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if run := &list.Items[i]; !convention.Finished(run.Status.Overall.Phase) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(run)})
		}
	}
	return reqs
}

// tenantChanged lets through the Tenant events that can change where or
// how a run executes: creations, deletions and spec changes, not the
// status the tenant reconciler writes all the time.
func tenantChanged() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return !e.ObjectNew.GetDeletionTimestamp().IsZero()
		}},
	)
}

// runChanged lets through the run events the engine acts on: anything but
// a change of status only, which the engine writes itself and has already
// acted on in the same reconcile.
func runChanged() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.LabelChangedPredicate{},
		predicate.AnnotationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return !e.ObjectNew.GetDeletionTimestamp().IsZero()
		}},
	)
}

// podSource watches the engine's Pods in one cluster and enqueues the run
// each belongs to. A Pod deleted before a round listed it is no longer
// expected (see podExpectations): its stage may need it again.
func (r *Engine) podSource(cl cluster.Cluster) source.Source {
	return source.Kind(cl.GetCache(), &corev1.Pod{},
		handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, pod *corev1.Pod) []reconcile.Request {
			r.expected.observed(client.ObjectKeyFromObject(pod))
			ns, name, ok := strings.Cut(pod.Annotations[convention.AnnotationRun], "/")
			if !ok {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
		}),
		podChanged())
}

// podChanged lets through the Pod events that can change a stage: phase
// changes, deletions and container waiting reasons. Creations are left
// out: the engine made the Pod and knows, and after a restart every run is
// reconciled anyway.
func podChanged() predicate.TypedPredicate[*corev1.Pod] {
	return predicate.TypedFuncs[*corev1.Pod]{
		CreateFunc: func(event.TypedCreateEvent[*corev1.Pod]) bool { return false },
		UpdateFunc: func(e event.TypedUpdateEvent[*corev1.Pod]) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.Status.Phase != n.Status.Phase ||
				(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) ||
				waitingReasons(o) != waitingReasons(n) ||
				unschedulable(o) != unschedulable(n) ||
				coordinatorFailed(o) != coordinatorFailed(n) ||
				workloadEnded(o) != workloadEnded(n)
		},
		DeleteFunc:  func(event.TypedDeleteEvent[*corev1.Pod]) bool { return true },
		GenericFunc: func(event.TypedGenericEvent[*corev1.Pod]) bool { return false },
	}
}

// coordinatorFailed reports whether the coordinator exited non-zero,
// which ends the attempt even while other containers run.
// workloadEnded says every workload container of a stage Pod has
// terminated. On a real node the Pod is still Running then, its
// coordinator waiting for the engine's word (signalWorkloadEnds), so no
// phase change would wake the engine to give it: a stage whose workload
// outlived its first reconciles would wait forever.
func workloadEnded(pod *corev1.Pod) bool {
	_, ended := workloadExit(pod)
	return ended
}

func coordinatorFailed(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; cs.Name == podbuild.CoordinatorName && t != nil && t.ExitCode != 0 {
			return true
		}
	}
	return false
}

func waitingReasons(pod *corev1.Pod) string {
	var b strings.Builder
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			if w := cs.State.Waiting; w != nil {
				b.WriteString(w.Reason)
			}
			b.WriteByte(',')
		}
	}
	return b.String()
}

func unschedulable(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse
		}
	}
	return false
}
