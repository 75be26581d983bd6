package exec

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/exec/podbuild"
)

// endPod ends a stage Pod that kwok runs as the kubelet would once its
// workload and the coordinator have exited: kwok cannot run gyre
// coordinator, so the test writes the Pod status itself, with message as
// the coordinator's termination message. It waits for kwok to have
// started the Pod, which kwok would otherwise overwrite.
func endPod(t testing.TB, c client.Client, ns, name, message string) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		pod := &corev1.Pod{}
		g.Expect(c.Get(bg, key(ns, name), pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		now := metav1.Now()
		terminated := func(name string, msg string) corev1.ContainerStatus {
			return corev1.ContainerStatus{Name: name, Image: "image", ImageID: "image",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					Reason: "Completed", Message: msg, StartedAt: now, FinishedAt: now}}}
		}
		pod.Status.Phase = corev1.PodSucceeded
		pod.Status.ContainerStatuses = nil
		for _, ctr := range pod.Spec.Containers {
			msg := ""
			if ctr.Name == podbuild.CoordinatorName {
				msg = message
			}
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, terminated(ctr.Name, msg))
		}
		g.Expect(c.Status().Update(bg, pod)).To(Succeed())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}
