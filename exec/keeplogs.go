package exec

import (
	"context"
	"fmt"
	"io"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/runlogs"
)

// The engine reads container logs through the API, so that the Pods of
// remote execution clusters are kept too.
//
// +kubebuilder:rbac:groups="",resources=pods/log,verbs=get

// podsClient returns a client for pods/log on the connection's cluster,
// made on first use.
func (c *conn) podsClient() (corev1client.PodsGetter, error) {
	c.podsOnce.Do(func() {
		var cs *kubernetes.Clientset
		cs, c.podsErr = kubernetes.NewForConfig(c.cluster.GetConfig())
		if cs != nil {
			c.pods = cs.CoreV1()
		}
	})
	return c.pods, c.podsErr
}

// keepLogs stores the log of every container (init containers included)
// of pods that are about to be deleted. It takes at most LogTimeout and
// LogMaxBytes per container, and never fails the reconcile: a log that
// cannot be read is reported and the Pod deleted all the same, since a
// Pod the engine cannot get rid of blocks the run's clean-up.
func (r *Engine) keepLogs(ctx context.Context, s *scope, pods []*corev1.Pod) {
	if r.logs == nil || s.target.pods == nil || len(pods) == 0 {
		return
	}
	log := ctrl.LoggerFrom(ctx)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LogTimeout)
	defer cancel()
	for _, pod := range pods {
		stage := pod.Annotations[AnnotationStage]
		attempt, err := strconv.ParseInt(pod.Annotations[AnnotationAttempt], 10, 32)
		if stage == "" || err != nil {
			continue
		}
		for _, c := range podContainers(pod) {
			k := runlogs.Key{Namespace: s.run.Namespace, Run: s.run.Name, Stage: stage, Attempt: int32(attempt), Container: c}
			if err := r.keepLog(ctx, s, pod, k); err != nil {
				log.Info("Keeping a container log failed", "Pod", client.ObjectKeyFromObject(pod), "container", c, "error", err.Error())
			}
		}
	}
}

// podContainers lists the containers of pod that have started, init
// containers first: the others have no log to read.
func podContainers(pod *corev1.Pod) []string {
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

func (r *Engine) keepLog(ctx context.Context, s *scope, pod *corev1.Pod, k runlogs.Key) error {
	// One byte past the cap lets the store tell a cut log from a full one.
	limit := r.cfg.LogMaxBytes + 1
	rc, err := s.target.pods.Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: k.Container, LimitBytes: &limit,
	}).Stream(ctx)
	if err != nil {
		return fmt.Errorf("read log of pod %s/%s container %s: %w", pod.Namespace, pod.Name, k.Container, err)
	}
	defer rc.Close()
	return r.logs.Write(ctx, k, io.LimitReader(rc, limit))
}
