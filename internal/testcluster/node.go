package testcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gyreops/gyre/internal/image"
)

// NodeName is the name the real node registers under.
const NodeName = "gyre-node"

// Images a real node has loaded: gyre's own (bin/gyre-image.tar, made by
// make image), a busybox base for workloads and GC Pods, and the sandbox
// image. The node has no registry: Pods must use imagePullPolicy
// IfNotPresent or Never.
const (
	GyreImage    = image.Name
	BusyboxImage = image.BusyboxName
)

// Where a real node keeps its state. They are fixed, not per cluster: one
// real node runs on a machine at a time (nodeLock), so a run that crashed
// leaves its remains at a known place for the next one to remove.
const (
	// nodeRun holds sockets and runtime state: on tmpfs, gone at reboot.
	nodeRun = "/run/gyre-node"
	// nodeData holds images, the kubelet's root and Pod logs.
	nodeData = "/var/lib/gyre-node"
	// nodeLock is held while a real node runs; a second one waits.
	nodeLock = "/run/gyre-node.lock"
	// nodeBridge is the Pods' bridge; the host is its gateway.
	nodeBridge = "gyre0"
	// nodeCgroup is the parent of every Pod's cgroup in each hierarchy.
	nodeCgroup = "gyre-node"
	// PodSubnet is the Pod network of the real node.
	PodSubnet = "10.244.0.0/24"
)

// RealNodeUnsupported says why this machine cannot run a real node, or
// returns nil when it can: Linux, root, and the programs make tools
// installs.
func RealNodeUnsupported() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("a real node needs Linux, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root (containerd and the kubelet mount, and make cgroups and network interfaces)")
	}
	for _, prog := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip"} {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("a real node needs %s: run `make tools` (it installs Debian's containerd, runc and containernetworking-plugins)", prog)
		}
	}
	for _, f := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback", image.DefaultBusybox} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("a real node needs %s: run `make tools`", f)
		}
	}
	return nil
}

// RequireRealNode is the environment variable that turns a machine
// without a real node from a skip into a failure, so CI cannot pass by
// skipping: GYRE_REAL_NODE=required.
const RequireRealNode = "GYRE_REAL_NODE"

// SkipWithoutRealNode skips a test on a machine that cannot run a real
// node, unless GYRE_REAL_NODE=required says it must, and in -short mode.
func SkipWithoutRealNode(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("a real node takes seconds to start; skipped in -short mode")
	}
	if err := RealNodeUnsupported(); err != nil {
		if os.Getenv(RequireRealNode) == "required" {
			t.Fatalf("%s=required, but: %v", RequireRealNode, err)
		}
		t.Skip(err)
	}
}

// nodeIP is the address the node and the API server use: the first IPv4
// address of the interface of the default route. Pods reach it through
// their bridge gateway; they could not reach 127.0.0.1 of the host.
func nodeIP() (string, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 || fields[1] != "00000000" {
			continue
		}
		iface, err := net.InterfaceByName(fields[0])
		if err != nil {
			return "", err
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("a real node needs a default route with an IPv4 address: Pods reach the host through it")
}

// freePort returns a TCP port free on ip.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// realNode is containerd and a kubelet running Pods on this machine.
type realNode struct {
	ip   string
	lock *os.File
}

// lockNode takes the machine's real-node lock, waiting for another
// process's node to stop and saying so, then removes what a crashed node
// left.
func lockNode(ctx context.Context) (*os.File, error) {
	f, err := waitNodeLock(ctx)
	if err != nil {
		return nil, err
	}
	if err := cleanNode(); err != nil {
		f.Close()
		return nil, fmt.Errorf("remove what an earlier real node left: %w", err)
	}
	if err := saveIPForward(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// waitNodeLock takes the real-node lock and nothing else: whatever an
// earlier node left is still there.
func waitNodeLock(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(nodeLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	said := start.Add(-time.Minute) // say it at once, then every 15 s
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", nodeLock, err)
		}
		owner, _ := os.ReadFile(nodeLock)
		if time.Since(said) >= 15*time.Second {
			said = time.Now()
			fmt.Fprintf(os.Stderr, "testcluster: waiting for the real node of process %s to stop (%s so far)\n",
				strings.TrimSpace(string(owner)), time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for the real node of process %s: %w", strings.TrimSpace(string(owner)), ctx.Err())
		case <-time.After(time.Second):
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// startNode starts containerd with the images loaded and a kubelet, and
// waits until the node is Ready.
func (c *Cluster) startNode(ctx context.Context, binDir string, n *realNode) error {
	for _, dir := range []string{nodeRun, nodeData, filepath.Join(nodeRun, "cni")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	ca := filepath.Join(nodeRun, "ca.crt")
	if err := os.WriteFile(ca, c.Config.CAData, 0o600); err != nil {
		return err
	}
	if err := writeNodeFiles(); err != nil {
		return err
	}
	if err := c.run("", "containerd", "--config", filepath.Join(nodeRun, "containerd.toml")); err != nil {
		return err
	}
	sock := filepath.Join(nodeRun, "containerd.sock")
	if err := waitForSocket(ctx, sock, 30*time.Second); err != nil {
		return fmt.Errorf("containerd does not serve %s (log: %s): %w", sock, filepath.Join(c.dir, "containerd.log"), err)
	}
	if err := c.loadImages(ctx, binDir, sock); err != nil {
		return err
	}
	if err := makeNodeCgroups(); err != nil {
		return err
	}
	port, err := freePort(n.ip)
	if err != nil {
		return err
	}
	kubeletConfig := filepath.Join(nodeRun, "kubelet.yaml")
	if err := os.WriteFile(kubeletConfig, []byte(kubeletConfiguration(n.ip, port, ca, sock)), 0o600); err != nil {
		return err
	}
	if err := c.run(binDir, "kubelet",
		"--config="+kubeletConfig,
		"--kubeconfig="+c.Kubeconfig,
		"--root-dir="+filepath.Join(nodeData, "kubelet"),
		"--cert-dir="+filepath.Join(nodeData, "pki"),
		"--hostname-override="+NodeName,
		"--node-ip="+n.ip,
		"--node-labels=type=real",
	); err != nil {
		return err
	}
	return c.waitNodeReady(ctx)
}

// loadImages builds the busybox and sandbox images and imports them, and
// gyre's own, into containerd's Kubernetes namespace.
func (c *Cluster) loadImages(ctx context.Context, binDir, sock string) error {
	gyreTar := filepath.Join(binDir, "gyre-image.tar")
	if _, err := os.Stat(gyreTar); err != nil {
		return fmt.Errorf("real node: gyre's image %s missing: run `make image`", gyreTar)
	}
	tars := []string{gyreTar}
	for _, img := range []struct {
		name string
		cmd  []string
	}{
		{name: image.BusyboxName, cmd: []string{"sh"}},
		// The sandbox only holds the Pod's namespaces.
		{name: image.PauseName, cmd: []string{"sleep", "2147483647"}},
	} {
		built, err := image.Busybox("", time.Unix(0, 0), img.cmd...)
		if err != nil {
			return err
		}
		path := filepath.Join(nodeRun, strings.NewReplacer("/", "_", ":", "_").Replace(img.name)+".tar")
		if err := image.Write(path, img.name, built); err != nil {
			return err
		}
		tars = append(tars, path)
	}
	for _, tar := range tars {
		cmd := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", "k8s.io", "images", "import", tar)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("load image %s into containerd: %w: %s", tar, err, lastLines(string(out), 5))
		}
	}
	return nil
}

// waitNodeReady waits until the kubelet reports the node Ready, then lifts
// the not-ready taint the API server put on it (the node lifecycle
// controller, which lifts it elsewhere, does not run here).
func (c *Cluster) waitNodeReady(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the real node to be Ready (kubelet log: %s): %w", filepath.Join(c.dir, "kubelet.log"), err)
	}
	patch := []byte(`{"spec":{"taints":null}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("untaint the real node: %w", err)
	}
	return nil
}

func waitForSocket(ctx context.Context, path string, timeout time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		conn, err := net.Dial("unix", path)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
}

// writeNodeFiles writes containerd's configuration and the CNI network.
func writeNodeFiles() error {
	containerd := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
# Plugins that would write outside gyre's directories, or that need
# kernel features gyre does not use.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  # Without it every sandbox fails where root lacks CAP_SYS_RESOURCE, as
  # in containers and sandboxes.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[5]q
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = %[6]q
`, filepath.Join(nodeData, "containerd"), filepath.Join(nodeRun, "containerd"), filepath.Join(nodeRun, "containerd.sock"),
		image.PauseName, filepath.Join(nodeRun, "cni"), filepath.Join(nodeRun, "runc"))
	if err := os.WriteFile(filepath.Join(nodeRun, "containerd.toml"), []byte(containerd), 0o600); err != nil {
		return err
	}
	// No masquerading: Pods talk only to the host and each other, and
	// every rule gyre does not add is one less to remove.
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "gyre",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, nodeBridge, PodSubnet, filepath.Join(nodeRun, "ipam"))
	return os.WriteFile(filepath.Join(nodeRun, "cni", "10-gyre.conflist"), []byte(cni), 0o600)
}

// kubeletConfiguration is the kubelet's configuration file. The API server
// calls the kubelet without a client certificate (envtest gives it none),
// so the kubelet serves anonymous requests, on the node address only.
func kubeletConfiguration(ip string, port int, ca, sock string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509:
    clientCAFile: %[3]s
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://%[4]s
# cgroup v1 hierarchies, no systemd, and swap on machines that have it.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupRoot: /%[5]s
# Logs, plugins and images stay in gyre's directories.
podLogsDir: %[6]s
volumePluginDir: %[7]s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
makeIPTablesUtilChains: false
resolvConf: /etc/resolv.conf
serializeImagePulls: false
# Status reaches the API server as soon as a container changes.
nodeStatusUpdateFrequency: 4s
syncFrequency: 5s
`, ip, port, ca, sock, nodeCgroup, filepath.Join(nodeData, "pod-logs"), filepath.Join(nodeData, "volume-plugins"))
}

// prepareNode takes the node lock and finds the node's address.
func prepareNode(ctx context.Context) (*realNode, error) {
	ip, err := nodeIP()
	if err != nil {
		return nil, err
	}
	lock, err := lockNode(ctx)
	if err != nil {
		return nil, err
	}
	return &realNode{ip: ip, lock: lock}, nil
}

// configureAPIServer makes the API server listen on the node's address,
// where Pods reach it, with its serving certificate naming that address.
func (n *realNode) configureAPIServer(s *envtest.APIServer) error {
	port, err := freePort(n.ip)
	if err != nil {
		return err
	}
	s.SecureServing.Address = n.ip
	s.SecureServing.Port = strconv.Itoa(port)
	args := s.Configure()
	// Pods get their service account's token, as in any cluster: the
	// installed gyre reads the API with it.
	args.Set("disable-admission-plugins", "")
	// There is no Service routing here: no endpoints for the kubernetes
	// Service, and the API server reaches the kubelet by its address,
	// not by a node name no DNS knows.
	args.Set("endpoint-reconciler-type", "none")
	args.Set("kubelet-preferred-address-types", "InternalIP,Hostname")
	args.Set("advertise-address", n.ip)
	return nil
}

// stop removes everything the node put on the host and releases the node
// lock. A nil node does nothing.
func (n *realNode) stop() error {
	if n == nil || n.lock == nil {
		return nil
	}
	err := cleanNode()
	n.lock.Close()
	n.lock = nil
	return err
}

// makeNodeCgroups makes the node's cgroup in every hierarchy: the kubelet
// refuses a cgroupRoot that is missing in any. A new cpuset cgroup has no
// CPUs and no memory nodes until given its parent's.
func makeNodeCgroups() error {
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*")
	if err != nil {
		return err
	}
	for _, h := range hierarchies {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(h, &fs); err != nil || (fs.Type != cgroupSuper && fs.Type != cgroup2Super) {
			continue
		}
		dir := filepath.Join(h, nodeCgroup)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("make cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			parent, err := os.ReadFile(filepath.Join(h, f))
			if err != nil {
				continue // not the cpuset hierarchy
			}
			if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
				return fmt.Errorf("set %s of cgroup %s: %w", f, dir, err)
			}
		}
	}
	return nil
}

// Magic numbers of cgroup v1 and v2 file systems (statfs(2)).
const (
	cgroupSuper  = 0x27e0eb
	cgroup2Super = 0x63677270
)
