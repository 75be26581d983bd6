package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/exec"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/manager"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/receiver"
	"github.com/gyreops/gyre/trigger"
)

// Options configures a dev run.
type Options struct {
	// StateDir keeps the control plane's data, the example repository and
	// the artifacts across runs.
	StateDir string
	// Example is the directory the example repository is made from on
	// first start.
	Example string
	// Once exits when the example WorkflowRun has finished and been
	// cleaned up, with an error unless it succeeded.
	Once bool
	// Timeout bounds a Once run.
	Timeout time.Duration
	// Out receives the progress a person follows.
	Out io.Writer
	// Node is NodeReal (containerd and a kubelet run the stages' real
	// containers), NodeKwok (kwok simulates them) or NodeAuto (real where
	// this machine can run one).
	Node string
}

// Kinds of node gyre dev runs stages on.
const (
	NodeAuto = "auto"
	NodeReal = "real"
	NodeKwok = "kwok"
)

// chooseNode resolves NodeAuto and says why a real node cannot run.
func chooseNode(node string) (string, string, error) {
	switch node {
	case NodeReal:
		if err := testcluster.RealNodeUnsupported(); err != nil {
			return "", "", err
		}
		return NodeReal, "", nil
	case NodeKwok:
		return NodeKwok, "as asked", nil
	case NodeAuto, "":
		if err := testcluster.RealNodeUnsupported(); err != nil {
			return NodeKwok, err.Error(), nil
		}
		return NodeReal, "", nil
	}
	return "", "", fmt.Errorf("--node %q: want %s, %s or %s", node, NodeAuto, NodeReal, NodeKwok)
}

// Tenants gyre dev creates: two tenants with two targets each, all on the
// local control plane.
var devTenants = []struct {
	name     string
	clusters []string
}{
	{name: "shop", clusters: []string{"staging", "prod"}},
	{name: "payments", clusters: []string{"eu", "us"}},
}

// runTenant is the tenant whose pipeline gyre dev runs once started.
const runTenant = "shop"

// ErrRunFailed is returned by a Once run whose WorkflowRun did not
// succeed.
var ErrRunFailed = errors.New("the example WorkflowRun did not succeed")

// Run starts everything, shows progress until ctx ends (or, with Once,
// until the example run is done) and stops everything again.
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	p := &printer{out: o.Out, start: start}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return err
	}
	stateDir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return err
	}

	node, why, err := chooseNode(o.Node)
	if err != nil {
		return err
	}
	copts := testcluster.Options{
		StateDir:          filepath.Join(stateDir, "cluster"),
		Scheduler:         true,
		ControllerManager: true,
	}
	if node == NodeReal {
		copts.RealNode = true
		p.say("Starting the local control plane in %s (etcd, kube-apiserver, kube-scheduler, kube-controller-manager) and a real node (containerd and a kubelet: stages run real containers)", stateDir)
	} else {
		copts.Nodes, copts.PodsSucceedByDefault = 3, true
		p.say("Starting the local control plane in %s (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok with 3 simulated nodes: %s)", stateDir, why)
	}
	cluster, err := testcluster.Start(ctx, copts)
	if err != nil {
		return fmt.Errorf("start the local control plane: %w", err)
	}
	defer cluster.Stop()
	p.say("Control plane up; kubectl works with: export KUBECONFIG=%s", cluster.Kubeconfig)
	if err := protect(ctx, p, cluster); err != nil {
		return err
	}

	repoDir := filepath.Join(stateDir, "git", "pipelines")
	created, err := ensureRepo(ctx, o.Example, repoDir)
	if err != nil {
		return err
	}
	if created {
		p.say("Made the example repository %s from %s", repoDir, o.Example)
	}
	// Pods on a real node reach the host at the node's address only.
	gitAddr := ""
	if node == NodeReal {
		gitAddr = cluster.NodeIP + ":0"
	}
	git, err := gitserver.StartHTTP(filepath.Dir(repoDir), gitserver.HTTPOptions{Addr: gitAddr})
	if err != nil {
		return fmt.Errorf("serve the example repository: %w", err)
	}
	defer git.Close()
	url := git.URL + "/pipelines/.git"
	p.say("Serving it over HTTP at %s", url)

	scheme, err := mgrconfig.NewScheme()
	if err != nil {
		return err
	}
	c, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := forgetOtherNodes(ctx, c, node); err != nil {
		return err
	}
	if err := seed(ctx, c, url, stateDir); err != nil {
		return err
	}
	p.say("Created Repository pipelines and Tenants %s", tenantList())

	opts := manager.Options{
		ProbeAddr:   "0",
		ArtifactDir: filepath.Join(stateDir, "artifacts"),
		LogDir:      logDir(stateDir, node),
		// The cluster has none of the PVCs that persistent Resources
		// name.
		Exec: exec.Config{IgnorePersistence: true},
	}
	if node == NodeReal {
		// The node has no registry: GC Pods use the busybox it has.
		opts.Exec.GCImage = testcluster.BusyboxImage
	}
	notify, err := startNotifier(c, p)
	if err != nil {
		return err
	}
	defer notify.Close()
	if err := notify.outbound(&opts.Exec); err != nil {
		return err
	}
	p.say("Notifier listening at %s; the example's notify stage reaches it as http://%s", notify.URL(), notifierHost)
	if opts.WebhookAddr, err = freeLocalAddr(); err != nil {
		return err
	}
	if opts.MetricsAddr, err = localMetricsAddr(); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cluster.Config, opts.Manager(scheme))
	if err != nil {
		return err
	}
	if err := manager.Setup(mgr, opts); err != nil {
		return err
	}
	if err := serveWeb(mgr, p, opts.LogDir); err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Start(mgrCtx) }()
	p.say("Controllers running: repository, tenant, workflowrun engine, cron triggers")
	sayWebhooks(p, opts.WebhookAddr)
	sayMetrics(p, opts.MetricsAddr)

	w := &watcher{c: c, p: p, repoDir: repoDir, gitURL: url, real: node == NodeReal}
	runCtx := ctx
	if o.Once && o.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	err = w.watch(runCtx, o.Once)
	stopMgr()
	if mErr := <-mgrErr; mErr != nil && err == nil {
		err = mErr
	}
	if errors.Is(err, context.Canceled) && !o.Once {
		return nil
	}
	return err
}

// protect installs gyre's admission policies, deletion protection and
// the run finalizer, as an install with config/default has them.
func protect(ctx context.Context, p *printer, cluster *testcluster.Cluster) error {
	if err := testcluster.InstallProtection(ctx, cluster.Config); err != nil {
		return err
	}
	p.say("Deletion protection on: a Tenant and its namespaces are deleted only once annotated %s=%s",
		gyrev1alpha1.DeletionProtectionAnnotation, gyrev1alpha1.DeletionProtectionDisabled)
	return testcluster.InstallRunFinalizer(ctx, cluster.Config)
}

// freeLocalAddr picks a free port on 127.0.0.1 for the webhook server,
// which listens only on what it is given.
func freeLocalAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port for the webhook server: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sayWebhooks prints where the webhook server takes SCM events: one URL
// per tenant namespace, whose WorkflowTriggers the events may fire.
func sayWebhooks(p *printer, addr string) {
	base := "http://" + addr + trigger.WebhookPath
	p.say("Webhook server listening at %s", base)
	for _, t := range devTenants {
		p.say("  SCM events for the WorkflowTriggers of tenant %s: POST %scyclone-%s", t.name, base, t.name)
	}
	p.say("  push events for Repositories with spec.webhook: POST http://%s%s", addr, receiver.Path)
}

func tenantList() string {
	s := ""
	for i, t := range devTenants {
		if i > 0 {
			s += " and "
		}
		s += fmt.Sprintf("%s (%s, %s)", t.name, t.clusters[0], t.clusters[1])
	}
	return s
}

// printer writes timestamped progress lines, whole even when the watcher
// and the notifier print at once.
type printer struct {
	mu    sync.Mutex
	out   io.Writer
	start time.Time
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
