package pipelines

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/testcluster"
)

// chain is a Workflow of n stages, each after the one before, whose
// workloads do nothing: what it takes is gyre's and the node's overhead.
func chain(n int) map[string]string {
	var stages, items strings.Builder
	for i := range n {
		fmt.Fprintf(&stages, `---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: step-%d
spec:
  pod:
    spec:
      containers:
      - name: main
        image: %s
        command: [sh, -c, "echo step:%d >> /cyclone/results/__result__"]
`, i, testcluster.BusyboxImage, i)
		fmt.Fprintf(&items, "  - name: step-%d\n", i)
		if i > 0 {
			fmt.Fprintf(&items, "    depends: [step-%d]\n", i-1)
		}
	}
	return map[string]string{
		"stages.yaml": stages.String(),
		"workflow.yaml": `apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: chain
spec:
  stages:
` + items.String(),
	}
}

// podTimes watches a namespace's stage Pods and keeps, for each, when it
// was created, when its workload ran and ended, and when its coordinator
// ended: the coordinator ends once the kubelet has delivered the engine's
// gyre.dev/workload-exit annotation to it.
type podTimes struct {
	mu   sync.Mutex
	pods map[string]*corev1.Pod
}

func watchPods(b *testing.B, ns string) *podTimes {
	w, err := k8s.Watch(bg, &corev1.PodList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	pt := &podTimes{pods: map[string]*corev1.Pod{}}
	go func() {
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || strings.HasSuffix(pod.Name, "-gc") {
				continue
			}
			pt.mu.Lock()
			pt.pods[pod.Name] = pod
			pt.mu.Unlock()
		}
	}()
	return pt
}

// means returns the mean Pod start (creation to workload start) and the
// mean delivery of the workload's end to the coordinator.
func (pt *podTimes) means() (start, exitDelivery time.Duration, n int) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, pod := range pt.pods {
		var wl, co *corev1.ContainerStateTerminated
		var wlStart time.Time
		for _, cs := range pod.Status.ContainerStatuses {
			t := cs.State.Terminated
			if t == nil {
				continue
			}
			switch cs.Name {
			case "main":
				wl, wlStart = t, t.StartedAt.Time
			case "csc-co":
				co = t
			}
		}
		if wl == nil || co == nil {
			continue
		}
		n++
		start += wlStart.Sub(pod.CreationTimestamp.Time)
		exitDelivery += co.FinishedAt.Sub(wl.FinishedAt.Time)
	}
	if n > 0 {
		start /= time.Duration(n)
		exitDelivery /= time.Duration(n)
	}
	return start, exitDelivery, n
}

// BenchmarkRealNode_fiveStageRun runs a Workflow of five stages one after
// another on the real node and reports the run's duration, each stage's
// share of it, how long a stage Pod takes from creation to its workload's
// start, and how long the workload's end takes to reach the coordinator.
// The kubelet's timestamps have a resolution of one second.
func BenchmarkRealNode_fiveStageRun(b *testing.B) {
	testcluster.SkipWithoutRealNode(b)
	g := NewWithT(b)
	startGyre(b)
	r := newTenant(b, "bench", chain(5))
	pods := watchPods(b, r.Worker())
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		run := waitFinished(g, startRun(g, r, fmt.Sprintf("chain-%d", i), "chain"))
		total += time.Since(start)
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "%+v", run.Status.Overall)
		for s := range 5 {
			g.Expect(run.Status.Stages[fmt.Sprintf("step-%d", s)].Outputs).To(ContainElement(cyclonev1alpha1.KeyValue{Key: "step", Value: fmt.Sprint(s)}))
		}
	}
	b.StopTimer()
	podStart, delivery, n := pods.means()
	g.Expect(n).To(BeNumerically(">=", 5*b.N))
	b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
	b.ReportMetric(total.Seconds()/float64(b.N)/5, "s/stage")
	b.ReportMetric(podStart.Seconds(), "s-pod-start")
	b.ReportMetric(delivery.Seconds(), "s-exit-delivery")
}
