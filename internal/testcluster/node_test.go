package testcluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// crashChild is set in the process that TestRealNode_runsAPodAndLeavesNothing
// starts, and then kills, with a Pod running on its real node.
const crashChild = "GYRE_TEST_REAL_NODE_CRASH_CHILD"

func TestRealNode_crashChild(t *testing.T) {
	if os.Getenv(crashChild) == "" {
		t.Skip("only run as the child of TestRealNode_runsAPodAndLeavesNothing")
	}
	g := NewWithT(t)
	ctx := context.Background()
	c, err := Start(ctx, Options{Scheduler: true, RealNode: true})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = clientset(g, c).CoreV1().Pods("default").Create(ctx, sleeper("left-running"), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		got, err := clientset(g, c).CoreV1().Pods("default").Get(ctx, "left-running", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Phase).To(Equal(corev1.PodRunning))
	}).WithTimeout(time.Minute).Should(Succeed())
	fmt.Println("dir " + c.Dir())
	fmt.Println("running")
	time.Sleep(time.Hour) // killed by the parent
}

func sleeper(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name: "main", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

// crashANode runs a real node with a Pod in a child process and kills the
// child with SIGKILL: its containers, mounts, network and cgroups stay.
func crashANode(t *testing.T, g Gomega) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRealNode_crashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashChild+"=1")
	out, err := cmd.StdoutPipe()
	g.Expect(err).NotTo(HaveOccurred())
	cmd.Stderr = cmd.Stdout
	g.Expect(cmd.Start()).To(Succeed())
	var seen strings.Builder
	var dir string
	s := bufio.NewScanner(out)
	for s.Scan() {
		seen.WriteString(s.Text() + "\n")
		if d, ok := strings.CutPrefix(s.Text(), "dir "); ok {
			dir = d
		}
		if s.Text() == "running" {
			break
		}
	}
	g.Expect(cmd.Process.Kill()).To(Succeed())
	_ = cmd.Wait()
	// envtest's etcd and kube-apiserver outlive their killed parent.
	t.Cleanup(func() {
		if dir != "" {
			_ = stopLeftovers(dir)
			_ = os.RemoveAll(dir)
		}
		// Their command lines name envtest's directories, not the
		// Cluster's, which stopLeftovers looks for: they are found by
		// the variable the child ran with.
		stopCrashChildren(t)
	})
	g.Expect(seen.String()).To(HaveSuffix("running\n"), "the child ran a Pod before it was killed")
	points, err := mounts()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Join(points, "\n")).To(ContainSubstring(nodeData), "the crash left mounts behind")
}

func TestRealNode_runsAPodAndLeavesNothing(t *testing.T) {
	SkipWithoutRealNode(t)
	g := NewWithT(t)
	ctx := context.Background()
	ipForwardBefore := func() []byte {
		lock, err := waitNodeLock(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		defer lock.Close()
		return hostIPForward(g)
	}()
	crashANode(t, g)
	start := time.Now()
	c, err := Start(ctx, Options{Scheduler: true, RealNode: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("real node Ready in %s", time.Since(start).Round(100*time.Millisecond))
	cs := clientset(g, c)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name: "main", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", "echo -n hello from $(hostname) > /dev/termination-log; exit 3"},
			}},
		},
	}
	_, err = cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	created := time.Now()
	g.Eventually(func(g Gomega) {
		got, err := cs.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Phase).To(Equal(corev1.PodFailed), "%+v", got.Status)
		term := got.Status.ContainerStatuses[0].State.Terminated
		g.Expect(term.ExitCode).To(BeEquivalentTo(3))
		g.Expect(term.Message).To(Equal("hello from hello"))
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	t.Logf("Pod ran to its end in %s", time.Since(created).Round(100*time.Millisecond))

	g.Expect(c.Stop()).To(Succeed())
	// Other test packages run real nodes too, and one may take the lock
	// as soon as Stop releases it. The checks hold the lock, so they see
	// what a stopped node left, never a running one.
	lock, err := waitNodeLock(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	defer lock.Close()
	points, err := mounts()
	g.Expect(err).NotTo(HaveOccurred())
	for _, p := range points {
		g.Expect(p).NotTo(HavePrefix(nodeData), "no mount is left")
		g.Expect(p).NotTo(HavePrefix(nodeRun), "no mount is left")
	}
	g.Expect(nodeData).NotTo(BeADirectory())
	g.Expect("/sys/fs/cgroup/memory/" + nodeCgroup).NotTo(BeADirectory())
	g.Expect("/sys/class/net/" + nodeBridge).NotTo(BeAnExistingFile())
	for _, table := range []string{"filter", "nat", "mangle"} {
		rules, err := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(rules)).NotTo(ContainSubstring("KUBE-"), "iptables table %s", table)
	}
	g.Expect(hostIPForward(g)).To(Equal(ipForwardBefore), "ip_forward is as it was")
}

// hostIPForward is the machine's own ip_forward, read with the node lock
// held. A node that crashed may have left ip_forward on; the value it
// saved is then the machine's.
func hostIPForward(g Gomega) []byte {
	if saved, err := os.ReadFile(ipForwardFile); err == nil {
		return saved
	}
	v, err := os.ReadFile(ipForward)
	g.Expect(err).NotTo(HaveOccurred())
	return v
}

// stopCrashChildren kills the control plane programs left running by the
// process crashANode killed, which carry crashChild in their environment.
func stopCrashChildren(t *testing.T) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	controlPlane := requiredBinaries(Options{Scheduler: true, ControllerManager: true, Nodes: 1})
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.Contains(strings.Split(string(environ), "\x00"), crashChild+"=1") {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if !slices.Contains(controlPlane, filepath.Base(argv0)) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			t.Logf("stopped %s (%d), left by the crashed child", filepath.Base(argv0), pid)
		}
	}
}
