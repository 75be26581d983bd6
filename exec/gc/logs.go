package gc

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/runlogs"
)

// Logs keeps the container logs of stage Pods about to be deleted.
type Logs struct {
	// Store keeps the logs; nil keeps none.
	Store runlogs.Store
	// Timeout bounds one Keep; MaxBytes caps what is read of one log.
	Timeout  time.Duration
	MaxBytes int64
}

// Keep stores the log of every container (init containers included) of
// run's pods, read through pods. It takes at most Timeout and MaxBytes
// per container, and never fails: a log that cannot be read is reported
// and the Pod deleted all the same, since a Pod the engine cannot get rid
// of blocks the run's clean-up.
func (l Logs) Keep(ctx context.Context, podsClient corev1client.PodsGetter, run *cyclonev1alpha1.WorkflowRun, pods []*corev1.Pod) {
	if l.Store == nil || podsClient == nil || len(pods) == 0 {
		return
	}
	log := ctrl.LoggerFrom(ctx)
	ctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	for _, pod := range pods {
		stage := pod.Annotations[convention.AnnotationStage]
		attempt, err := strconv.ParseInt(pod.Annotations[convention.AnnotationAttempt], 10, 32)
		if stage == "" || err != nil {
			continue
		}
		for _, c := range startedContainers(pod) {
			k := runlogs.Key{Namespace: run.Namespace, Run: run.Name, Stage: stage, Attempt: int32(attempt), Container: c}
			if err := l.keep(ctx, podsClient, pod, k); err != nil {
				log.Info("Keeping a container log failed", "Pod", client.ObjectKeyFromObject(pod), "container", c, "error", err.Error())
			}
		}
	}
}

// startedContainers lists the containers of pod that have started, init
// containers first: the others have no log to read.
func startedContainers(pod *corev1.Pod) []string {
	started := map[string]bool{}
	for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
			started[cs.Name] = true
		}
	}
	var names []string
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if started[c.Name] {
			names = append(names, c.Name)
		}
	}
	return names
}

func (l Logs) keep(ctx context.Context, podsClient corev1client.PodsGetter, pod *corev1.Pod, k runlogs.Key) error {
	// One byte past the cap lets the store tell a cut log from a full one.
	limit := l.MaxBytes + 1
	rc, err := podsClient.Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: k.Container, LimitBytes: &limit,
	}).Stream(ctx)
	if err != nil {
		return fmt.Errorf("read log of pod %s/%s container %s: %w", pod.Namespace, pod.Name, k.Container, err)
	}
	defer rc.Close()
	return l.Store.Write(ctx, k, io.LimitReader(rc, limit))
}
