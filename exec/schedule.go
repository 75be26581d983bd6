package exec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// labelProject is Cyclone's label naming a run's or workflow's Project.
const labelProject = "project.cyclone.dev/name"

// schedule records a new attempt for every stage that may start now, within
// the run's and the tenant's parallelism, and returns the Pods to create.
func (r *Engine) schedule(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus) ([]*corev1.Pod, error) {
	if _, failed := blockingFailure(st.Stages); failed {
		return nil, nil
	}
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
		if ss.Pod != nil || finished(ss.Status.Phase) || !depsMet(st.Stages, ss) {
			continue
		}
		if t := ss.NextAttemptTime; t != nil && s.now.Before(t.Time) {
			s.wakeAt(t.Time)
			continue
		}
		if delegated, err := r.delegate(ctx, s, st, name); err != nil {
			return nil, err
		} else if delegated {
			continue
		}
		if running >= runCap {
			break
		}
		if r.cfg.TenantParallelism > 0 && tenantCap == math.MaxInt {
			// Counted lazily: most rounds start nothing.
			n, err := r.tenantRunning(ctx, s.run)
			if err != nil {
				return nil, err
			}
			tenantCap, tenantRunning = r.cfg.TenantParallelism, n
		}
		if running+tenantRunning >= tenantCap {
			transition(&ss.Status, cyclonev1alpha1.StatusPending, "TenantParallelism",
				fmt.Sprintf("waiting: the tenant already runs %d stages", tenantCap), s.now)
			s.wakeAt(s.now.Add(r.cfg.WaitInterval))
			break
		}
		attempt := max(ss.Attempt, 1)
		ss.Attempt = attempt
		pod, err := r.buildPod(ctx, s, st, name)
		if err != nil {
			if asInvalid(err, ss, s.now) || r.asWaiting(err, s, ss) {
				continue
			}
			return nil, err
		}
		now := metav1.NewTime(s.now)
		ss.Pod = &cyclonev1alpha1.PodInfo{Name: pod.Name, Namespace: pod.Namespace}
		ss.NextAttemptTime = nil
		ss.Status.Phase = "" // a new attempt: its phase starts afresh
		transition(&ss.Status, cyclonev1alpha1.StatusPending, ReasonPodCreating, fmt.Sprintf("attempt %d", attempt), s.now)
		ss.Status.StartTime = &now
		pods = append(pods, pod)
		running++
	}
	return pods, nil
}

// asInvalid fails a stage whose Pod cannot be built as specified and
// reports whether err was of that kind.
func asInvalid(err error, ss *cyclonev1alpha1.StageStatus, now time.Time) bool {
	var invalid *invalidStageError
	if !errors.As(err, &invalid) {
		return false
	}
	transition(&ss.Status, cyclonev1alpha1.StatusFailed, ReasonInvalidStage, invalid.msg, now)
	ss.NextAttemptTime = nil
	return true
}

// tenantRunning counts the stage attempts in flight in the other runs of
// the run's tenant, from the cache.
func (r *Engine) tenantRunning(ctx context.Context, run *cyclonev1alpha1.WorkflowRun) (int, error) {
	list := &cyclonev1alpha1.WorkflowRunList{}
	if err := r.client.List(ctx, list, client.InNamespace(run.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("list runs of tenant: %w", err)
	}
	n := 0
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == run.UID || finished(other.Status.Overall.Phase) {
			continue
		}
		for _, ss := range other.Status.Stages {
			if active(ss) {
				n++
			}
		}
	}
	return n, nil
}

// buildPod builds the Pod of a stage's current attempt from the Stage, its
// Resources and the Project.
func (r *Engine) buildPod(ctx context.Context, s *scope, st *cyclonev1alpha1.WorkflowRunStatus, name string) (*corev1.Pod, error) {
	run := s.run
	stage := &cyclonev1alpha1.Stage{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: name}, stage); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, r.missing(s, "stage", name, run.Namespace, func(msg string) error { return invalidStage("%s", msg) })
		}
		return nil, fmt.Errorf("get stage %s: %w", name, err)
	}
	resources := map[string]*cyclonev1alpha1.Resource{}
	if stage.Spec.Pod != nil {
		for _, items := range [][]cyclonev1alpha1.ResourceItem{stage.Spec.Pod.Inputs.Resources, stage.Spec.Pod.Outputs.Resources} {
			for _, it := range items {
				res := &cyclonev1alpha1.Resource{}
				err := r.client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: it.Name}, res)
				if apierrors.IsNotFound(err) {
					if err := r.missing(s, "resource", it.Name, run.Namespace, func(string) error { return nil }); err != nil {
						return nil, err
					}
					continue // past the grace period stagePod names the missing resource
				}
				if err != nil {
					return nil, fmt.Errorf("get resource %s: %w", it.Name, err)
				}
				resources[it.Name] = res
			}
		}
	}
	project, err := r.project(ctx, s)
	if err != nil {
		return nil, err
	}
	item := stageItem(s.workflow, name)
	produced, err := r.artifactPaths(ctx, run.Namespace, stage, item)
	if err != nil {
		return nil, err
	}
	secrets, err := r.referredSecrets(ctx, run, stage, resources)
	if err != nil {
		return nil, err
	}
	withVars := run.DeepCopy()
	withVars.Status.GlobalVariables = st.GlobalVariables
	pod, secret, err := r.cfg.stagePod(stagePodInput{
		Run:           withVars,
		Workflow:      s.workflow,
		Item:          item,
		Stage:         stage,
		Resources:     resources,
		Project:       project,
		Namespace:     s.target.namespace,
		PVC:           s.target.pvc,
		Attempt:       st.Stages[name].Attempt,
		ArtifactPaths: produced,
		Secrets:       secrets,
		PodSecurity:   s.target.level,
	})
	if err != nil {
		return nil, err
	}
	if secret != nil {
		if s.secrets == nil {
			s.secrets = map[string]*corev1.Secret{}
		}
		s.secrets[pod.Name] = secret
	}
	return pod, nil
}

// referredSecrets reads the Secrets of the run's namespace that the
// stage's arguments and the parameters of its resources refer to
// ("${secrets.<namespace>:<name>/...}"). They are read from the API
// server, not cached: the engine watches no Secret. A Secret that does
// not exist is left out, for stagePod to report.
func (r *Engine) referredSecrets(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, stage *cyclonev1alpha1.Stage, resources map[string]*cyclonev1alpha1.Resource) (map[string]*corev1.Secret, error) {
	var values []string
	add := func(items []cyclonev1alpha1.ParameterItem) {
		for _, p := range items {
			if p.Value != nil {
				values = append(values, *p.Value)
			}
		}
	}
	if stage.Spec.Pod != nil {
		for _, a := range stage.Spec.Pod.Inputs.Arguments {
			add([]cyclonev1alpha1.ParameterItem{cyclonev1alpha1.ParameterItem(a)})
		}
	}
	for _, res := range resources {
		add(res.Spec.Parameters)
	}
	for _, configs := range [][]cyclonev1alpha1.ParameterConfig{run.Spec.StageParams, run.Spec.ResourceParams} {
		for _, c := range configs {
			add(c.Parameters)
		}
	}
	names := secretNamesIn(run.Namespace, values...)
	if len(names) == 0 {
		return nil, nil
	}
	secrets := map[string]*corev1.Secret{}
	for _, n := range names {
		if _, done := secrets[n]; done {
			continue
		}
		sec := &corev1.Secret{}
		if err := r.live.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: n}, sec); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("get secret %s: %w", n, err)
		}
		secrets[n] = sec
	}
	return secrets, nil
}

// artifactPaths reads, from the Stages that produce them, the paths of
// the output artifacts stage's input artifacts come from. A source that
// names no Stage or artifact is left out, for stagePod to report.
func (r *Engine) artifactPaths(ctx context.Context, ns string, stage *cyclonev1alpha1.Stage, item cyclonev1alpha1.StageItem) (map[string]string, error) {
	if stage.Spec.Pod == nil || len(stage.Spec.Pod.Inputs.Artifacts) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, a := range stage.Spec.Pod.Inputs.Artifacts {
		source := artifactSource(item.Artifacts, a)
		from, artifact, ok := strings.Cut(source, "/")
		if !ok {
			continue
		}
		producer := &cyclonev1alpha1.Stage{}
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: from}, producer); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("get stage %s: %w", from, err)
		}
		if producer.Spec.Pod == nil {
			continue
		}
		for _, o := range producer.Spec.Pod.Outputs.Artifacts {
			if o.Name == artifact {
				out[source] = mountPath(o.Path, o.Name)
			}
		}
	}
	return out, nil
}

// project returns the run's Project, named by Cyclone's project label on
// the run or its Workflow, or nil.
func (r *Engine) project(ctx context.Context, s *scope) (*cyclonev1alpha1.Project, error) {
	name := s.run.Labels[labelProject]
	if name == "" {
		name = s.workflow.Labels[labelProject]
	}
	if name == "" {
		return nil, nil
	}
	p := &cyclonev1alpha1.Project{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: s.run.Namespace, Name: name}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get project %s: %w", name, err)
	}
	return p, nil
}

// createPods creates the Pods of attempts the status records. A Pod the
// API server refuses is reported on its stage rather than only in the
// controller's log: refused as invalid, the attempt fails, since the same
// Pod would be refused again; refused as forbidden (a ResourceQuota that
// is full, or that wants every container sized; a policy), the stage
// stays Pending with the refusal as its message, and the Pod is tried
// again after WaitInterval, when the quota may have room.
func (r *Engine) createPods(ctx context.Context, s *scope, pods []*corev1.Pod) error {
	var st *cyclonev1alpha1.WorkflowRunStatus
	for _, pod := range pods {
		err := r.createPod(ctx, s, pod)
		var refusal *refusedError
		if errors.As(err, &refusal) {
			if st == nil {
				st = s.run.Status.DeepCopy()
			}
			if ss := st.Stages[pod.Annotations[AnnotationStage]]; ss != nil {
				// The same Pod would be refused again: no retry.
				transition(&ss.Status, cyclonev1alpha1.StatusFailed, refusal.reason, refusal.msg, s.now)
				ss.NextAttemptTime = nil
				s.wakeAt(s.now)
				continue
			}
			return err
		}
		if err == nil || !(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) {
			if err != nil {
				return err
			}
			continue
		}
		if st == nil {
			st = s.run.Status.DeepCopy()
		}
		ss := st.Stages[pod.Annotations[AnnotationStage]]
		if ss == nil {
			return err
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
	}
	if st == nil {
		return nil
	}
	summarize(st, s.now)
	return r.writeStatus(ctx, s.run, st)
}

// createPod creates a stage or GC Pod, adopting one of the same name that
// this run already created. A Pod checkPod refuses is never created: for
// a stage Pod the *refusedError is returned for the stage to fail; a GC
// Pod's refusal fails the run's GC, with the reason in its message.
func (r *Engine) createPod(ctx context.Context, s *scope, pod *corev1.Pod) error {
	if err := r.checkPod(s, pod); err != nil {
		if pod.Labels[LabelPodKind] != podKindGC || s.run.Status.GC == nil {
			return err
		}
		st := s.run.Status.DeepCopy()
		st.GC.Phase, st.GC.Message = cyclonev1alpha1.GCFailed, err.Error()
		s.wakeAt(s.now) // what follows GC, history pruning, goes on
		return r.writeStatus(ctx, s.run, st)
	}
	if err := r.inject("before-pod-create"); err != nil {
		return err
	}
	// The Pod's secret references resolve from the run Secret, which
	// must exist first.
	if sec := s.secrets[pod.Name]; sec != nil {
		if err := r.ensureRunSecret(ctx, s, sec); err != nil {
			return err
		}
	}
	err := s.target.client.Create(ctx, pod)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Created pod", "Pod", client.ObjectKeyFromObject(pod))
		r.observePodCreated(s, pod)
		return r.inject("after-pod-create")
	}
	existing := &corev1.Pod{}
	if err := s.target.live.Get(ctx, client.ObjectKeyFromObject(pod), existing); err != nil {
		return fmt.Errorf("get existing pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if existing.Labels[LabelRunUID] == string(s.run.UID) {
		return nil // ours: adopt
	}
	if existing.Labels[LabelManagedBy] == ManagedByExec {
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

// deleteStrayPods deletes the unfinished Pods of attempts the status no
// longer runs: timed-out attempts, cancelled stages, superseded attempts.
// Deletion is level-based, so a deletion lost to a restart happens on the
// next round.
func (r *Engine) deleteStrayPods(ctx context.Context, s *scope, pods map[string]*corev1.Pod) error {
	current := map[string]bool{}
	for _, ss := range s.run.Status.Stages {
		if active(ss) {
			current[ss.Pod.Name] = true
		}
	}
	for _, pod := range pods {
		if current[pod.Name] || pod.DeletionTimestamp != nil ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		r.keepLogs(ctx, s, []*corev1.Pod{pod})
		if err := s.target.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}
