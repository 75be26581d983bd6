package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/testcluster"
)

// buildGyre builds the gyre binary once for the tests that run it as a
// user would.
var buildGyre = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "gyre-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gyre")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// TestDev_onceRunsTheExamplePipeline runs `gyre dev --once` from a fresh
// state directory, as the README's first command does, and checks that it
// converges every target, runs the example WorkflowRun through its stages
// and GC, and exits 0.
func TestDev_onceRunsTheExamplePipeline(t *testing.T) {
	g := NewWithT(t)
	bin := gyreForDev(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--once", "--node=kwok", "--state-dir", t.TempDir(), "--timeout", "4m")
	out, err := cmd.CombinedOutput()
	t.Logf("gyre dev output:\n%s", out)
	g.Expect(err).NotTo(HaveOccurred(), "gyre dev --once exits 0")
	for _, want := range []string{
		`Control plane up; kubectl works with: export KUBECONFIG=`,
		`Repository pipelines is at main@sha1:[0-9a-f]{40}`,
		`Tenant shop, cluster staging: Ready, \d+ objects applied at main@sha1:`,
		`Tenant payments, cluster us: Ready, \d+ objects applied at main@sha1:`,
		`Started WorkflowRun cyclone-shop/`,
		`stage \S+\s+Running`,
		`stage \S+\s+Succeeded`,
		// gyre dev serves the webhook server, and the notification
		// service the example's notify stage delegates to.
		`Webhook server listening at http://127\.0\.0\.1:\d+/webhooks/`,
		`Metrics at http://127\.0\.0\.1:\d+/metrics`,
		`Notifier got POST /api/v1/notify: stage notify-prod of WorkflowRun cyclone-shop/\S+, attempt 1, config \{"channel":"#builds"\}`,
		`stage notify-prod\s+Succeeded: posted by gyre dev's notifier`,
		`GC Pod cyclone-shop-worker/\S+-gc created`,
		`WorkflowRun \S+ Succeeded in \d+s; its Pods and scratch data are cleaned up`,
	} {
		g.Expect(string(out)).To(MatchRegexp(want))
	}
}

// TestRealNode_devRunsTheDemoInRealContainers runs `gyre dev --once` on a
// real node, as `make run` does where it can: the example's demo pipeline
// checks the example repository out from gyre dev's Git server through
// gyre's resolver, hands a file from one stage to the next, reports
// outputs, and its GC Pod removes the run's data.
func TestRealNode_devRunsTheDemoInRealContainers(t *testing.T) {
	testcluster.SkipWithoutRealNode(t)
	g := NewWithT(t)
	bin := gyreForDev(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--once", "--node=real", "--state-dir", t.TempDir(), "--timeout", "4m")
	out, err := cmd.CombinedOutput()
	t.Logf("gyre dev output:\n%s", out)
	g.Expect(err).NotTo(HaveOccurred(), "gyre dev --once exits 0")
	for _, want := range []string{
		`and a real node \(containerd and a kubelet: stages run real containers\)`,
		`Serving it over HTTP at http://\d+\.\d+\.\d+\.\d+:\d+/pipelines/.git`,
		`Started WorkflowRun cyclone-shop/demo-\S+ of Workflow demo-`,
		`stage inventory-\S+\s+Succeeded .*; outputs: LastCommitID=[0-9a-f]{40}, overlays=\d+`,
		`stage summary-\S+\s+Succeeded .*; outputs: tenants=analytics payments shop`,
		`GC Pod cyclone-shop-worker/\S+-gc created`,
		`GC Pod removed: `,
		`WorkflowRun demo-\S+ Succeeded in \d+s; its Pods and scratch data are cleaned up`,
	} {
		g.Expect(string(out)).To(MatchRegexp(want))
	}
}

// TestDev_appliesACommit runs `gyre dev`, commits a change to the example
// repository it made, and watches gyre apply the new revision and prune an
// object the commit removed.
func TestDev_appliesACommit(t *testing.T) {
	g := NewWithT(t)
	dev := startDev(t, 5*time.Minute)
	state, cmd, waitFor := dev.state, dev.cmd, dev.waitFor

	repo := filepath.Join(state, "git", "pipelines")
	// Take the payments Project out of Git: gyre must prune it from both
	// of payments' targets.
	kust := filepath.Join(repo, "tenants", "payments", "base", "kustomization.yaml")
	b, err := os.ReadFile(kust)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).To(ContainSubstring("project.yaml"))
	g.Expect(os.WriteFile(kust, []byte(strings.Replace(string(b), "- project.yaml\n", "", 1)), 0o644)).To(Succeed())
	git := exec.Command("git", "-c", "user.name=test", "-c", "user.email=test@gyre.invalid", "commit", "-qam", "payments: drop the project")
	git.Dir = repo
	out, err := git.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	head, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	g.Expect(err).NotTo(HaveOccurred())
	rev := strings.TrimSpace(string(head))

	waitFor(`Repository pipelines is at main@sha1:` + rev)
	waitFor(`Tenant payments, cluster (eu|us): Ready, \d+ objects applied at main@sha1:` + rev)
	waitFor(`Tenant payments, cluster (eu|us): Ready, \d+ objects applied at main@sha1:` + rev)

	kubectl := func(args ...string) (string, error) {
		root, _ := filepath.Abs("../..")
		c := exec.Command(filepath.Join(root, "bin", "kubectl"), args...)
		c.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(state, "cluster", "kubeconfig"))
		out, err := c.CombinedOutput()
		return string(out), err
	}
	g.Eventually(func() string {
		out, _ := kubectl("get", "projects.cyclone.dev", "-n", "cyclone-payments", "-o", "name")
		return out
	}).WithTimeout(30*time.Second).Should(BeEmpty(), "the Project that left Git was pruned")
	g.Expect(cmd.Cancel()).To(Succeed())
	_ = cmd.Wait()
}

// TestDev_showsTheWholeLoop runs `gyre dev` and checks that it serves the
// webhook server at the URL it prints, and that its notifier prints one
// line for each notification it gets: the example's notify stage, and a
// Workflow's webhook notification.
func TestDev_showsTheWholeLoop(t *testing.T) {
	g := NewWithT(t)
	dev := startDev(t, 5*time.Minute)

	hooks := dev.printed(`Webhook server listening at (http://127\.0\.0\.1:\d+/webhooks/)$`)
	g.Expect(hooks).NotTo(BeNil(), "gyre dev prints the webhook server's URL")
	resp, err := http.Get(hooks[1] + "cyclone-shop")
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusMethodNotAllowed), "the webhook server takes only POSTs")
	g.Expect(resp.Header.Get("Allow")).To(Equal(http.MethodPost))

	g.Expect(dev.printed(`Notifier got POST /api/v1/notify: stage notify-prod of WorkflowRun cyclone-shop/\S+, attempt 1, config \{"channel":"#builds"\}`)).
		NotTo(BeNil(), "the notifier printed the notify stage's request")
	g.Expect(dev.printed(`stage notify-prod\s+Succeeded`)).NotTo(BeNil(), "the notifier reported the stage done")

	notifier := dev.printed(`Notifier listening at (http://127\.0\.0\.1:\d+);`)
	g.Expect(notifier).NotTo(BeNil(), "gyre dev prints the notifier's URL")
	run := `{"apiVersion":"cyclone.dev/v1alpha1","kind":"WorkflowRun","metadata":{"name":"ci-1","namespace":"cyclone-shop"},"status":{"overall":{"phase":"Failed"}}}`
	resp, err = http.Post(notifier[1]+"/cyclone", "application/json", strings.NewReader(run))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	dev.waitFor(`Notifier got POST /cyclone: WorkflowRun cyclone-shop/ci-1 Failed$`)
	checkWebView(g, dev)

	expectRunMetrics(g, dev)

	g.Expect(dev.cmd.Cancel()).To(Succeed())
	_ = dev.cmd.Wait()
}

// checkWebView checks that gyre dev serves the web view at the URL it
// prints, with no login, and that it lists the example's run.
func checkWebView(g Gomega, dev *devSession) {
	web := dev.printed(`Web view at (http://127\.0\.0\.1:\d+/runs)$`)
	g.Expect(web).NotTo(BeNil(), "gyre dev prints the web view's URL")
	resp, err := http.Get(web[1] + "?tenant=shop")
	g.Expect(err).NotTo(HaveOccurred())
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "no token needed on 127.0.0.1")
	g.Expect(string(body)).To(MatchRegexp(`href="\./runs/cyclone-shop/\S+"`), "the example's run is listed")
}

// expectRunMetrics scrapes the metrics URL gyre dev prints and finds the
// example run counted there as it finished, by tenant and workflow.
func expectRunMetrics(g *WithT, dev *devSession) {
	metrics := dev.printed(`Metrics at (http://127\.0\.0\.1:\d+/metrics)$`)
	g.Expect(metrics).NotTo(BeNil(), "gyre dev prints the metrics URL")
	finished := dev.printed(`WorkflowRun \S+ (Succeeded|Failed) in`)
	g.Expect(finished).NotTo(BeNil(), "the example run finished")
	resp, err := http.Get(metrics[1])
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	var gyre []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "gyre_") {
			gyre = append(gyre, line)
		}
	}
	g.Expect(gyre).To(ContainElement(MatchRegexp(`^gyre_runs_finished_total\{phase="`+finished[1]+`",tenant="shop",workflow="[^"]+"\} [1-9]\d*$`)),
		"the example run of tenant shop is counted by its phase")
	g.Expect(gyre).To(ContainElement(MatchRegexp(`^gyre_stage_pod_creation_delay_seconds_count\{tenant="shop",workflow="[^"]+"\} [1-9]\d*$`)),
		"its stage Pods' creation delays are measured")
}

// TestDev_startsAfterAKill kills a running `gyre dev` the way a closed
// terminal or an OOM kill would, leaving its etcd and kube-apiserver
// behind, and checks that the next `gyre dev` on the same state directory
// still starts and runs the example. While the first one runs, a second
// one on its state directory is refused at once with a clear message.
func TestDev_startsAfterAKill(t *testing.T) {
	g := NewWithT(t)
	dev := startDev(t, 8*time.Minute)
	ctx, bin, state, first := dev.ctx, dev.bin, dev.state, dev.cmd

	second, err := exec.CommandContext(ctx, bin, "dev", "--once", "--node=kwok", "--state-dir", state).CombinedOutput()
	g.Expect(err).To(HaveOccurred(), "a second gyre dev on a state directory in use fails:\n%s", second)
	g.Expect(string(second)).To(ContainSubstring("is in use by another control plane"))

	g.Expect(first.Process.Kill()).To(Succeed())
	_ = first.Wait()
	g.Expect(leftovers(state)).NotTo(BeEmpty(), "etcd and kube-apiserver outlive a killed gyre dev")
	// Someone following a log of the dead control plane.
	bystander := exec.Command("tail", "-f", filepath.Join(state, "cluster", "kube-scheduler.log"))
	g.Expect(bystander.Start()).To(Succeed())
	defer func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }()

	out, err := exec.CommandContext(ctx, bin, "dev", "--once", "--node=kwok", "--state-dir", state, "--timeout", "4m").CombinedOutput()
	t.Logf("gyre dev output:\n%s", out)
	g.Expect(err).NotTo(HaveOccurred(), "gyre dev --once after a kill exits 0")
	g.Expect(string(out)).To(MatchRegexp(`WorkflowRun \S+ Succeeded in \d+s`))
	g.Expect(leftovers(state)).To(ConsistOf(ContainSubstring("tail -f")), "no control-plane process is left running; the bystander is")
}

// leftovers lists the live processes whose command line names a path in
// dir.
func leftovers(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), dir+"/") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			continue // gone, or a zombie waiting to be reaped
		}
		out = append(out, strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}

// gyreForDev skips a test that starts a control plane under -short, and
// returns the gyre binary.
func gyreForDev(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	bin, err := buildGyre()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// devSession is a running `gyre dev`.
type devSession struct {
	// ctx ends at the test's deadline, and with it the session.
	ctx        context.Context
	bin, state string
	cmd        *exec.Cmd
	// waitFor waits for an output line matching a regular expression
	// and returns the match.
	waitFor func(re string) string
	// printed returns the submatches of the first line printed so far
	// that matches a regular expression, or nil.
	printed func(re string) []string
}

// startDev starts `gyre dev` on a fresh state directory, stopped with an
// interrupt after timeout or at the end of the test, and waits until its
// dev loop is live.
func startDev(t *testing.T, timeout time.Duration) *devSession {
	t.Helper()
	bin := gyreForDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	state := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "dev", "--node=kwok", "--state-dir", state)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	var mu sync.Mutex
	var all []string
	go func() {
		defer close(lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			t.Log(s.Text())
			mu.Lock()
			all = append(all, s.Text())
			mu.Unlock()
			lines <- s.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	waitFor := func(re string) string {
		t.Helper()
		rx := regexp.MustCompile(re)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("gyre dev ended before printing %q", re)
				}
				if m := rx.FindString(line); m != "" {
					return m
				}
			case <-ctx.Done():
				t.Fatalf("no line matching %q", re)
			}
		}
	}
	printed := func(re string) []string {
		rx := regexp.MustCompile(re)
		mu.Lock()
		defer mu.Unlock()
		for _, line := range all {
			if m := rx.FindStringSubmatch(line); m != nil {
				return m
			}
		}
		return nil
	}
	waitFor(`The dev loop is live`)
	return &devSession{ctx: ctx, bin: bin, state: state, cmd: cmd, waitFor: waitFor, printed: printed}
}
