package testcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// threadMasks returns the CPU mask of every thread of pid.
func threadMasks(g Gomega, pid int) map[int]unix.CPUSet {
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	g.Expect(err).NotTo(HaveOccurred())
	masks := map[int]unix.CPUSet{}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		var set unix.CPUSet
		if unix.SchedGetaffinity(tid, &set) == nil {
			masks[tid] = set
		}
	}
	return masks
}

func TestPinApart_keepsTheControlPlaneAndThisProcessOnSeparateCPUs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{Scheduler: true})
	g.Expect(err).NotTo(HaveOccurred())
	defer c.Stop()
	masksBefore := threadMasks(g, os.Getpid())

	undo, err := c.PinApart()
	if errors.Is(err, ErrTooFewCPUs) {
		t.Skip(err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	pids, err := ControlPlanePIDs()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pids).To(HaveLen(3), "etcd, kube-apiserver and kube-scheduler")
	var control unix.CPUSet
	for _, pid := range pids {
		for tid, set := range threadMasks(g, pid) {
			g.Expect(set.Count()).To(BeNumerically(">", 0))
			if control.Count() == 0 {
				control = set
			}
			g.Expect(set).To(Equal(control), "thread %d of control plane process %d", tid, pid)
		}
	}
	for tid, set := range threadMasks(g, os.Getpid()) {
		for cpu := range 1024 {
			g.Expect(set.IsSet(cpu) && control.IsSet(cpu)).To(BeFalse(), "thread %d of this process shares CPU %d with the control plane", tid, cpu)
		}
	}
	_, err = clientset(g, c).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pinned"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "the pinned control plane serves")

	// What a phase costs the control plane: its CPU time grows with the
	// requests it serves.
	before, err := ProcessesCPU(pids)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(before).To(BeNumerically(">", 0), "starting the control plane took CPU")
	for i := range 100 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cpu-" + strconv.Itoa(i), Namespace: "pinned"}}
		_, err := clientset(g, c).CoreV1().ConfigMaps("pinned").Create(ctx, cm, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	after, err := ProcessesCPU(pids)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after).To(BeNumerically(">", before), "100 creates cost the control plane CPU")

	undo()
	for tid, set := range threadMasks(g, os.Getpid()) {
		if was, ok := masksBefore[tid]; ok {
			g.Expect(set).To(Equal(was), "thread %d is back where it was", tid)
		}
	}
}
