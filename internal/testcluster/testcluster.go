package testcluster

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Annotations that pick a stage Pod's fate under kwok (see kwok/pod.yaml).
const (
	// AnnotationResult is succeed, fail, oom, init-fail or
	// image-pull-backoff; without it a Pod runs until deleted.
	AnnotationResult = "test.gyre.dev/result"
	// AnnotationDelay is how long the Pod runs before its result, as a Go
	// duration.
	AnnotationDelay = "test.gyre.dev/delay"
	// AnnotationExitCode is the exit code of a failing container.
	AnnotationExitCode = "test.gyre.dev/exit-code"
)

// Client rate limits of the scheduler and the controller manager: high
// enough never to throttle, as kwokctl's --disable-qps-limits sets them.
const (
	unlimitedQPS   = "5000"
	unlimitedBurst = "10000"
)

//go:embed kwok/*.yaml kwok/dev/*.yaml
var kwokStages embed.FS

// Options says which parts of a control plane to start.
type Options struct {
	// Scheduler starts kube-scheduler, so Pods get nodes.
	Scheduler bool
	// ControllerManager starts kube-controller-manager with the namespace,
	// garbage-collector, resource-quota, volume-binder and PVC-protection
	// controllers, so namespaces finalise, ownerReferences cascade, quotas
	// count, PVCs bind to PersistentVolumes and deleted PVCs go.
	ControllerManager bool
	// Nodes > 0 starts kwok and registers that many fake nodes that run
	// Pods by gyre's stages.
	Nodes int
	// CRDDirs hold CRD manifests to install; gyre's config/crd/bases when
	// nil.
	CRDDirs []string
	// StateDir keeps etcd's data, the certificates, the kubeconfig and the
	// process logs, so a cluster started again on it has every object it
	// had (gyre dev). Empty means a temporary directory removed by Stop.
	StateDir string
	// PodsSucceedByDefault makes Pods without a test.gyre.dev/result
	// annotation succeed after three to four seconds instead of running until
	// deleted: gyre dev's simulated workloads.
	PodsSucceedByDefault bool
	// RealNode runs a real node on this machine, named NodeName:
	// containerd and a kubelet, with gyre's image (bin/gyre-image.tar),
	// BusyboxImage and a sandbox image loaded, Pods on a bridge network,
	// and the API server on the node's address so that Pods reach it. It
	// also runs the controllers a Deployment needs (deployment,
	// replicaset, endpointslice, disruption, serviceaccount, root CA
	// publisher), and admits Pods with their service account tokens. It
	// needs Linux and root (RealNodeUnsupported says why not); one real
	// node runs on a machine at a time, so a second Start waits.
	RealNode bool
}

// Cluster is a running control plane.
type Cluster struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig for the cluster.
	Kubeconfig string

	// NodeIP is the real node's address, which the API server also
	// listens on; empty without a real node.
	NodeIP string

	env   *envtest.Environment
	node  *realNode
	dir   string
	keep  bool     // dir is the caller's state directory
	lock  *os.File // held on a state directory while the cluster runs
	procs []*process
}

// Start starts a control plane as opts asks and waits until it serves.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	binDir := filepath.Join(root, "bin")
	for _, name := range requiredBinaries(opts) {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return nil, fmt.Errorf("test control plane: %s missing in %s: run `make tools`", name, binDir)
		}
	}
	if opts.RealNode {
		if err := RealNodeUnsupported(); err != nil {
			return nil, err
		}
	}
	crdDirs := opts.CRDDirs
	if crdDirs == nil {
		crdDirs = []string{filepath.Join(root, "config", "crd", "bases")}
	}
	c := &Cluster{keep: opts.StateDir != "", env: &envtest.Environment{
		BinaryAssetsDirectory: binDir,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
	}}
	if c.keep {
		c.dir = opts.StateDir
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, err
		}
		if c.lock, err = lockStateDir(c.dir); err != nil {
			return nil, err
		}
		// envtest only fills in the serving CA when it makes the
		// certificates itself, so they are made anew at every start; the
		// kubeconfig is rewritten to match.
		err := os.RemoveAll(filepath.Join(c.dir, "certs"))
		for _, sub := range []string{"etcd", "certs"} {
			if err == nil {
				err = os.MkdirAll(filepath.Join(c.dir, sub), 0o700)
			}
		}
		if err != nil {
			c.lock.Close()
			return nil, err
		}
		c.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(c.dir, "etcd")}
		c.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: filepath.Join(c.dir, "certs")}
	} else if c.dir, err = os.MkdirTemp("", "gyre-testcluster-"); err != nil {
		return nil, err
	}
	if opts.RealNode {
		if c.node, err = prepareNode(ctx); err == nil {
			c.NodeIP = c.node.ip
			err = c.node.configureAPIServer(c.env.ControlPlane.GetAPIServer())
		}
		if err != nil {
			c.node.stop()
			if !c.keep {
				_ = os.RemoveAll(c.dir)
			}
			if c.lock != nil {
				c.lock.Close()
			}
			return nil, err
		}
	}
	if c.Config, err = c.env.Start(); err != nil {
		c.node.stop()
		_ = c.env.Stop()
		if !c.keep {
			_ = os.RemoveAll(c.dir)
		}
		if c.lock != nil {
			c.lock.Close()
		}
		return nil, fmt.Errorf("start etcd and kube-apiserver: %w", err)
	}
	if err := c.startExtras(ctx, binDir, opts); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func requiredBinaries(opts Options) []string {
	names := []string{"etcd", "kube-apiserver"}
	if opts.Scheduler {
		names = append(names, "kube-scheduler")
	}
	if opts.ControllerManager || opts.RealNode {
		names = append(names, "kube-controller-manager")
	}
	if opts.RealNode {
		names = append(names, "kubelet")
	}
	if opts.Nodes > 0 {
		names = append(names, "kwok")
	}
	return names
}

func (c *Cluster) startExtras(ctx context.Context, binDir string, opts Options) error {
	user, err := c.env.ControlPlane.AddUser(envtest.User{Name: "gyre-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return err
	}
	if opts.Scheduler {
		if err := c.run(binDir, "kube-scheduler",
			"--kubeconfig="+c.Kubeconfig,
			"--authentication-kubeconfig="+c.Kubeconfig,
			"--authorization-kubeconfig="+c.Kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=0",
			// The default 50 requests/s caps bindings, and with them every
			// Pod's start, at 50 Pods/s: far below what the API server
			// takes, and not a limit a benchmark of gyre should measure.
			"--kube-api-qps="+unlimitedQPS,
			"--kube-api-burst="+unlimitedBurst,
		); err != nil {
			return err
		}
	}
	if opts.ControllerManager || opts.RealNode {
		controllers := "namespace-controller,garbage-collector-controller,resourcequota-controller,persistentvolume-binder-controller," +
			// A deleted PVC keeps its protection finalizer, and its namespace
			// stays Terminating, until this controller sees no Pod uses it.
			"persistentvolumeclaim-protection-controller"
		args := []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--authentication-kubeconfig=" + c.Kubeconfig,
			"--authorization-kubeconfig=" + c.Kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=0",
			"--use-service-account-credentials=false",
			"--kube-api-qps=" + unlimitedQPS,
			"--kube-api-burst=" + unlimitedBurst,
		}
		if opts.RealNode {
			// What a Deployment with a ServiceAccount, Services and a
			// PodDisruptionBudget needs on a real node.
			controllers += ",deployment-controller,replicaset-controller,endpointslice-controller,disruption-controller," +
				"serviceaccount-controller,root-ca-certificate-publisher-controller"
			ca := filepath.Join(c.dir, "ca.crt")
			if err := os.WriteFile(ca, c.Config.CAData, 0o600); err != nil {
				return err
			}
			args = append(args, "--root-ca-file="+ca)
		}
		if err := c.run(binDir, "kube-controller-manager", append(args, "--controllers="+controllers)...); err != nil {
			return err
		}
	}
	if opts.Nodes > 0 {
		stages, err := c.writeKwokStages(opts.PodsSucceedByDefault)
		if err != nil {
			return err
		}
		if err := c.run(binDir, "kwok",
			"--kubeconfig="+c.Kubeconfig,
			"--config="+stages,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			// One kwok runs per cluster, so it need not take nodes by
			// lease; with leases, a kwok started after one was killed
			// would wait out the dead one's lease before running Pods.
			"--node-lease-duration-seconds=0",
			"--server-address=",
		); err != nil {
			return err
		}
		if err := c.addNodes(ctx, opts.Nodes); err != nil {
			return err
		}
	}
	if c.node != nil {
		return c.startNode(ctx, binDir, c.node)
	}
	return nil
}

// writeKwokStages joins gyre's kwok Stage files into one multi-document
// config file.
func (c *Cluster) writeKwokStages(podsSucceed bool) (string, error) {
	files, err := fs.Glob(kwokStages, "kwok/*.yaml")
	if err != nil {
		return "", err
	}
	if podsSucceed {
		files = append(files, "kwok/dev/pod-default.yaml")
	}
	var buf bytes.Buffer
	for _, f := range files {
		b, err := kwokStages.ReadFile(f)
		if err != nil {
			return "", err
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	path := filepath.Join(c.dir, "kwok-stages.yaml")
	return path, os.WriteFile(path, buf.Bytes(), 0o600)
}

// addNodes registers fake nodes and waits until kwok reports them Ready.
func (c *Cluster) addNodes(ctx context.Context, n int) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		// The labels a kubelet gives its node, so a Pod can select one.
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name},
		}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, node := range nodes.Items {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %d kwok nodes to be Ready (kwok log: %s): %w", n, filepath.Join(c.dir, "kwok.log"), err)
	}
	// The API server taints new nodes not-ready and only the node
	// lifecycle controller, which this control plane does not run, lifts
	// the taint; lift it here now that kwok reports the nodes Ready.
	for i := range n {
		patch := []byte(`{"spec":{"taints":null}}`)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, fmt.Sprintf("kwok-node-%d", i), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("untaint kwok node: %w", err)
		}
	}
	return nil
}

// Stop stops every process of the cluster and removes its files.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		errs = append(errs, c.procs[i].stop())
	}
	c.procs = nil
	// The kubelet leaves its containers running when it stops.
	errs = append(errs, c.node.stop())
	c.node = nil
	if c.env != nil {
		errs = append(errs, c.env.Stop())
	}
	// GYRE_TESTCLUSTER_KEEP=1 keeps the process logs for a post-mortem.
	if c.keep {
		if c.lock != nil {
			errs = append(errs, c.lock.Close())
		}
		return errors.Join(errs...)
	}
	if os.Getenv("GYRE_TESTCLUSTER_KEEP") == "" {
		errs = append(errs, os.RemoveAll(c.dir))
	} else {
		fmt.Fprintln(os.Stderr, "testcluster: logs kept in", c.dir)
	}
	return errors.Join(errs...)
}

// Dir is the cluster's scratch directory; process logs are there.
func (c *Cluster) Dir() string { return c.dir }

type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// run starts a binary of binDir, or of PATH when binDir is empty, with its
// output in <dir>/<name>.log.
func (c *Cluster) run(binDir, name string, args ...string) error {
	path := filepath.Join(binDir, name)
	if binDir == "" {
		var err error
		if path, err = exec.LookPath(name); err != nil {
			return err
		}
	}
	log, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1), log: log}
	go func() { p.done <- cmd.Wait() }()
	c.procs = append(c.procs, p)
	// A process that dies at once was misconfigured: say so now, with
	// its own words, rather than as a time-out later.
	select {
	case err := <-p.done:
		p.done <- err
		out, _ := os.ReadFile(log.Name())
		return fmt.Errorf("%s exited at start (%v): %s", name, err, lastLines(string(out), 10))
	case <-time.After(500 * time.Millisecond):
	}
	return nil
}

func (p *process) stop() error {
	defer p.log.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RepoRoot finds the root of the gyre repository from the working
// directory, so tests in any package find bin/ and config/.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/gyreops/gyre\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("test control plane: not inside the gyre repository")
		}
		dir = parent
	}
}
