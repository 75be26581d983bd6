package testcluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func clientset(g Gomega, c *Cluster) *kubernetes.Clientset {
	cs, err := kubernetes.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())
	return cs
}

func TestStart_twiceInOneProcess(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	for i := range 2 {
		c, err := Start(ctx, Options{})
		g.Expect(err).NotTo(HaveOccurred(), "start %d", i)
		_, err = clientset(g, c).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gyre-test"}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred(), "a fresh cluster each time")
		g.Expect(c.Stop()).To(Succeed())
	}
}

func TestStart_twoAtOnceAreSeparate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	control, err := Start(ctx, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer control.Stop()
	execution, err := Start(ctx, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer execution.Stop()

	_, err = clientset(g, control).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-on-control"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = clientset(g, execution).CoreV1().Namespaces().Get(ctx, "only-on-control", metav1.GetOptions{})
	g.Expect(err).To(MatchError(ContainSubstring("not found")))

	crds, err := clientset(g, execution).Discovery().ServerResourcesForGroupVersion("cyclone.dev/v1alpha1")
	g.Expect(err).NotTo(HaveOccurred(), "gyre's CRDs are installed on both")
	g.Expect(crds.APIResources).NotTo(BeEmpty())
}

// TestStart_kwokRunsPodsByAnnotation checks gyre's kwok stages: the
// scheduler places Pods on fake nodes and each annotation gives its fate.
func TestStart_kwokRunsPodsByAnnotation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{Scheduler: true, ControllerManager: true, Nodes: 2})
	g.Expect(err).NotTo(HaveOccurred())
	defer c.Stop()
	cs := clientset(g, c)

	pod := func(name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
			Spec: corev1.PodSpec{
				RestartPolicy:  corev1.RestartPolicyNever,
				InitContainers: []corev1.Container{{Name: "pull", Image: "resolver"}},
				Containers:     []corev1.Container{{Name: "main", Image: "work"}, {Name: "coordinator", Image: "coordinator"}},
			},
		}
	}
	tests := []struct {
		name        string
		annotations map[string]string
		phase       corev1.PodPhase
		check       func(g Gomega, p *corev1.Pod)
	}{
		{
			name:        "a Pod asked to succeed after a delay succeeds",
			annotations: map[string]string{AnnotationResult: "succeed", AnnotationDelay: "500ms"},
			phase:       corev1.PodSucceeded,
		},
		{
			name:        "a Pod asked to fail fails with its exit code",
			annotations: map[string]string{AnnotationResult: "fail", AnnotationExitCode: "3"},
			phase:       corev1.PodFailed,
			check: func(g Gomega, p *corev1.Pod) {
				g.Expect(p.Status.ContainerStatuses[0].State.Terminated.ExitCode).To(BeEquivalentTo(3))
			},
		},
		{
			name:        "a Pod asked to run out of memory is OOMKilled",
			annotations: map[string]string{AnnotationResult: "oom"},
			phase:       corev1.PodFailed,
			check: func(g Gomega, p *corev1.Pod) {
				g.Expect(p.Status.ContainerStatuses[0].State.Terminated.Reason).To(Equal("OOMKilled"))
			},
		},
		{
			name:        "a Pod whose init container fails fails",
			annotations: map[string]string{AnnotationResult: "init-fail"},
			phase:       corev1.PodFailed,
			check: func(g Gomega, p *corev1.Pod) {
				g.Expect(p.Status.InitContainerStatuses[0].State.Terminated.ExitCode).To(BeEquivalentTo(1))
			},
		},
		{
			name:        "a Pod whose image cannot be pulled waits in ImagePullBackOff",
			annotations: map[string]string{AnnotationResult: "image-pull-backoff"},
			phase:       corev1.PodPending,
			check: func(g Gomega, p *corev1.Pod) {
				g.Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
				g.Expect(p.Status.ContainerStatuses[0].State.Waiting.Reason).To(Equal("ImagePullBackOff"))
			},
		},
		{
			name:  "a Pod without a result keeps running",
			phase: corev1.PodRunning,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			name := "pod-" + string(rune('a'+i))
			_, err := cs.CoreV1().Pods("default").Create(ctx, pod(name, tt.annotations), metav1.CreateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Eventually(func(g Gomega) {
				p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Spec.NodeName).To(HavePrefix("kwok-node-"), "scheduled")
				g.Expect(p.Status.Phase).To(Equal(tt.phase))
				if tt.check != nil {
					tt.check(g, p)
				}
			}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		})
	}

	t.Run("a deleted Pod goes away", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(cs.CoreV1().Pods("default").Delete(ctx, "pod-f", metav1.DeleteOptions{})).To(Succeed())
		g.Eventually(func() error {
			_, err := cs.CoreV1().Pods("default").Get(ctx, "pod-f", metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(MatchError(ContainSubstring("not found")))
	})
}

// TestStart_stateDirSurvivesRestart is gyre dev's case: a cluster started
// again on its state directory has everything it had, and in dev mode a
// Pod with no test annotation runs to success.
func TestStart_stateDirSurvivesRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	state := t.TempDir()
	opts := Options{StateDir: state, Scheduler: true, Nodes: 1, PodsSucceedByDefault: true}

	c, err := Start(ctx, opts)
	g.Expect(err).NotTo(HaveOccurred())
	cs := clientset(g, c)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "work", Namespace: "default"},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "work"}}},
	}
	_, err = cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "work", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Status.Phase).To(Equal(corev1.PodSucceeded))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(c.Stop()).To(Succeed())
	g.Expect(filepath.Join(state, "kubeconfig")).To(BeAnExistingFile(), "kubectl can use the kept kubeconfig")

	c, err = Start(ctx, opts)
	g.Expect(err).NotTo(HaveOccurred(), "a second start on the same state")
	defer c.Stop()
	p, err := clientset(g, c).CoreV1().Pods("default").Get(ctx, "work", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "the Pod survived the restart")
	g.Expect(p.Status.Phase).To(Equal(corev1.PodSucceeded))
}
