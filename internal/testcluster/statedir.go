package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockStateDir takes the lock that says a control plane runs on dir, and
// then stops what a previous holder left running there.
//
// etcd and kube-apiserver are started in their own process group, so a
// closed terminal or a killed gyre dev leaves them running, holding
// etcd's data directory: the next start would time out waiting for an
// etcd that cannot open it. The lock tells such leftovers from a control
// plane that is still in use: the kernel drops it when its holder dies,
// however it dies, and the file is opened close-on-exec, so the control
// plane's own processes never hold it.
func lockStateDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another control plane (process %s); stop it first, or choose another state directory",
				dir, strings.TrimSpace(string(owner)))
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err := stopLeftovers(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stopLeftovers kills every control-plane process whose command line
// names a path in dir, and waits until they are gone. Other programs that
// name it, a kubectl with --kubeconfig or a tail of a log, are left alone.
func stopLeftovers(dir string) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil // no procfs: nothing can be found, nor was left by us
	}
	prefix := []byte(filepath.Clean(dir) + string(filepath.Separator))
	// Every program a Cluster may run.
	controlPlane := requiredBinaries(Options{Scheduler: true, ControllerManager: true, Nodes: 1})
	var left []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, prefix) {
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if !slices.Contains(controlPlane, filepath.Base(string(argv0))) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			left = append(left, pid)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range left {
		for running(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d left running on state directory %s does not stop", pid, dir)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// running reports whether pid is a live process. A killed process whose
// parent has not reaped it yet is a zombie: it holds nothing any more.
func running(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
