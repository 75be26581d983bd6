package testcluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cleanNode removes everything a real node puts on the host, whether it
// stopped cleanly or crashed: its processes and the Pods' processes, the
// mounts under its directories and the Pods' network namespaces, the
// kubelet's iptables chains, the bridge, Pod log links, the cgroups, and
// the directories. Each step goes on when an earlier one fails, so one
// stuck mount does not leave the rest behind; the errors are joined.
//
// It runs with the node lock held, so nothing it removes is in use.
func cleanNode() error {
	var errs []error
	errs = append(errs, killNodeProcesses())
	errs = append(errs, unmountUnder(nodeData, nodeRun))
	errs = append(errs, removePodNetns())
	errs = append(errs, removeKubeletChains())
	if _, err := net.InterfaceByName(nodeBridge); err == nil {
		if out, err := exec.Command("ip", "link", "delete", nodeBridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w: %s", nodeBridge, err, out))
		}
	}
	errs = append(errs, removeLogLinks())
	errs = append(errs, removeCgroups())
	errs = append(errs, restoreIPForward())
	for _, dir := range []string{nodeRun, nodeData} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	// Directories at fixed places that the kubelet and containerd make
	// whatever they are told: removed when empty, so a machine's own
	// runtime, if it has one, keeps them.
	for _, dir := range []string{"/run/containerd/s", "/run/containerd/fifo", "/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd",
		"/run/netns", "/var/log/containers", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet"} {
		_ = syscall.Rmdir(dir)
	}
	return errors.Join(errs...)
}

// ipForwardFile keeps net.ipv4.ip_forward as it was before a real node
// ran (the CNI bridge turns it on), outside the node's directories so a
// crashed node's successor still finds it.
const (
	ipForward     = "/proc/sys/net/ipv4/ip_forward"
	ipForwardFile = "/run/gyre-node.ip_forward"
)

// saveIPForward records ip_forward unless an earlier node, which may have
// crashed with it on, recorded it already.
func saveIPForward() error {
	if _, err := os.Stat(ipForwardFile); err == nil {
		return nil
	}
	v, err := os.ReadFile(ipForward)
	if err != nil {
		return nil // no such setting here: nothing to restore
	}
	return os.WriteFile(ipForwardFile, v, 0o600)
}

func restoreIPForward() error {
	v, err := os.ReadFile(ipForwardFile)
	if err != nil {
		return nil
	}
	if err := os.WriteFile(ipForward, v, 0o644); err != nil {
		return fmt.Errorf("restore %s: %w", ipForward, err)
	}
	return os.Remove(ipForwardFile)
}

// killNodeProcesses kills the node's containerd, kubelet and shims (whose
// command lines name its directories), and every process in its cgroups:
// the containers. It waits until they are gone, since a dying process
// still holds its mounts.
func killNodeProcesses() error {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		prog := filepath.Base(string(argv0))
		ours := (prog == "containerd" || prog == "kubelet" || strings.HasPrefix(prog, "containerd-shim")) &&
			(bytes.Contains(cmdline, []byte(nodeRun)) || bytes.Contains(cmdline, []byte(nodeData)))
		if ours || inNodeCgroup(pid) {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, pid := range pids {
		for running(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d of the real node does not stop", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// inNodeCgroup reports whether pid runs in a cgroup under the node's.
func inNodeCgroup(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && (parts[2] == "/"+nodeCgroup || strings.HasPrefix(parts[2], "/"+nodeCgroup+"/")) {
			return true
		}
	}
	return false
}

// mounts returns the mount points of this mount namespace.
func mounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 {
			points = append(points, unescapeMount(fields[4]))
		}
	}
	return points, s.Err()
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline
// and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder unmounts every mount at or below the given directories,
// deepest first, lazily so a busy one still goes.
func unmountUnder(dirs ...string) error {
	points, err := mounts()
	if err != nil {
		return err
	}
	var ours []string
	for _, p := range points {
		for _, d := range dirs {
			if p == d || strings.HasPrefix(p, d+"/") {
				ours = append(ours, p)
			}
		}
	}
	// Deepest first; a point mounted twice (the kubelet bind-mounts its
	// root onto itself) is unmounted twice.
	sort.SliceStable(ours, func(i, j int) bool { return len(ours[i]) > len(ours[j]) })
	var errs []error
	for _, p := range ours {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// removePodNetns unmounts and removes the network namespaces containerd
// made for Pods (named cni-<uuid> under /run/netns). With the node lock
// held and the node's processes gone, none of them is in use by gyre; a
// namespace some other process still runs in is left alone.
func removePodNetns() error {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	inUse := netnsInUse()
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "cni-") {
			continue
		}
		path := filepath.Join("/run/netns", e.Name())
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err == nil && inUse[st.Ino] {
			continue
		}
		_ = syscall.Unmount(path, syscall.MNT_DETACH)
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// netnsInUse returns the inode numbers of the network namespaces that
// processes run in.
func netnsInUse() map[uint64]bool {
	used := map[uint64]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st); err == nil {
			used[st.Ino] = true
		}
	}
	return used
}

// kubeletChains are the iptables chains a kubelet makes even with
// makeIPTablesUtilChains off: its canary, which tells it when the tables
// were flushed, and the hint chain that says which iptables mode it uses.
var kubeletChains = []string{"KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT", "KUBE-FIREWALL"}

// removeKubeletChains removes the kubelet's chains from every table, with
// the rules that jump to them. A machine that runs another Kubernetes
// node has the same chains: they are left alone when any rule outside
// them refers to one, which gyre's kubelet never adds.
func removeKubeletChains() error {
	var errs []error
	for _, prog := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(prog); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(prog, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue // the table or the family is missing here
			}
			rules := strings.Split(string(out), "\n")
			for _, chain := range kubeletChains {
				if !slices.Contains(rules, "-N "+chain) || referenced(rules, chain) {
					continue
				}
				for _, args := range [][]string{{"-F", chain}, {"-X", chain}} {
					cmd := exec.Command(prog, append([]string{"-w", "-t", table}, args...)...)
					if out, err := cmd.CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s -t %s %s: %w: %s", prog, table, strings.Join(args, " "), err, out))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// referenced reports whether a rule outside chain jumps to it.
func referenced(rules []string, chain string) bool {
	for _, r := range rules {
		if strings.HasPrefix(r, "-A ") && !strings.HasPrefix(r, "-A "+chain+" ") &&
			(strings.Contains(r, "-j "+chain+" ") || strings.HasSuffix(r, "-j "+chain)) {
			return true
		}
	}
	return false
}

// removeLogLinks removes the links the kubelet makes in
// /var/log/containers (a fixed place) to its Pods' logs.
func removeLogLinks() error {
	entries, err := os.ReadDir("/var/log/containers")
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range entries {
		path := filepath.Join("/var/log/containers", e.Name())
		target, err := os.Readlink(path)
		if err != nil || !strings.HasPrefix(target, nodeData+"/") {
			continue
		}
		if err := os.Remove(path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroups removes the node's cgroup tree from every hierarchy,
// deepest first: a cgroup is removed with rmdir once it has no process
// and no child.
func removeCgroups() error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + nodeCgroup)
	if st, err := os.Stat("/sys/fs/cgroup/" + nodeCgroup); err == nil && st.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/"+nodeCgroup)
	}
	var errs []error
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.SliceStable(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
