package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTooFewCPUs is PinApart's answer on a machine with one CPU, where
// nothing can be kept apart.
var ErrTooFewCPUs = errors.New("fewer than 2 CPUs: the control plane and this process share them")

// PinApart runs the control plane's processes on the first half of this
// process's CPUs and this process, with every process it starts from now
// on, on the other half, until the returned function puts every thread
// back where it was.
//
// A benchmark that compares gyre with a raw replay of its writes needs
// this on a small machine: there gyre's own CPU comes straight out of the
// API server's, which a replay client barely uses, so the ratio measures
// the machine's size as much as gyre. Kept apart, both phases get the same
// API server, as when gyre runs on a node of its own, and the ratio says
// what gyre asks of that API server and how well it keeps it busy.
func (c *Cluster) PinApart() (func(), error) {
	all, err := ownCPUs()
	if err != nil {
		return nil, err
	}
	if len(all) < 2 {
		return nil, ErrTooFewCPUs
	}
	var control, rest unix.CPUSet
	for i, cpu := range all {
		if i < len(all)/2 {
			control.Set(cpu)
		} else {
			rest.Set(cpu)
		}
	}
	pids, err := ControlPlanePIDs()
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, errors.New("no control plane process of this process found in /proc")
	}
	var saved []savedMask
	undo := func() {
		for _, s := range saved {
			_ = unix.SchedSetaffinity(s.tid, &s.mask) // a thread that ended needs nothing
		}
	}
	for _, pid := range pids {
		if err := pinThreads(pid, &control, &saved); err != nil {
			undo()
			return nil, err
		}
	}
	if err := pinThreads(os.Getpid(), &rest, &saved); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

// savedMask is a thread's CPU mask before PinApart changed it.
type savedMask struct {
	tid  int
	mask unix.CPUSet
}

// ownCPUs lists the CPUs this process may run on, in order.
func ownCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("read this process's CPUs: %w", err)
	}
	var cpus []int
	for cpu := 0; len(cpus) < set.Count(); cpu++ {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

// ControlPlanePIDs finds the control plane programs this process started:
// its children whose program is one a Cluster runs.
func ControlPlanePIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	programs := requiredBinaries(Options{Scheduler: true, ControllerManager: true, Nodes: 1})
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentOf(pid) != self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // it ended
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if slices.Contains(programs, filepath.Base(string(argv0))) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// parentOf returns pid's parent, or 0 when it cannot be read.
func parentOf(pid int) int {
	fields := statFields(pid)
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(string(fields[1]))
	return ppid
}

// statFields returns the fields of /proc/<pid>/stat from the state on
// (field 3 of proc(5) is the first), or nil when it cannot be read.
func statFields(pid int) [][]byte {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return bytes.Fields(stat[i+1:])
}

// ProcessesCPU returns the CPU time, user and system, that the processes
// pids have used so far. Of the control plane's processes
// (ControlPlanePIDs), its difference across a benchmark phase is what the
// phase cost the API server and etcd, whichever process sent the requests.
func ProcessesCPU(pids []int) (time.Duration, error) {
	if len(pids) == 0 {
		return 0, errors.New("no process to measure")
	}
	var ticks int64
	for _, pid := range pids {
		fields := statFields(pid)
		if len(fields) < 13 {
			return 0, fmt.Errorf("read the CPU time of process %d", pid)
		}
		for _, f := range fields[11:13] { // utime, stime
			n, err := strconv.ParseInt(string(f), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
			}
			ticks += n
		}
	}
	// proc(5) counts in clock ticks, USER_HZ, which is 100 on Linux.
	return time.Duration(ticks) * (time.Second / 100), nil
}

// pinThreads sets the CPU mask of every thread of pid, and adds each
// thread's mask before to saved. Threads started later inherit the mask
// of the thread that starts them, which is pinned by then.
func pinThreads(pid int, mask *unix.CPUSet, saved *[]savedMask) error {
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return fmt.Errorf("list the threads of process %d: %w", pid, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		var before unix.CPUSet
		if unix.SchedGetaffinity(tid, &before) != nil {
			continue // it ended
		}
		if err := unix.SchedSetaffinity(tid, mask); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return fmt.Errorf("pin thread %d of process %d: %w", tid, pid, err)
		}
		*saved = append(*saved, savedMask{tid: tid, mask: before})
	}
	return nil
}

// PinApartFor pins as PinApart does until tb ends, and logs where the
// control plane and the benchmark run. GYRE_BENCH_SHARED_CPUS=1 leaves
// every CPU shared, to measure what gyre's own CPU costs a small machine.
func (c *Cluster) PinApartFor(tb testing.TB) {
	tb.Helper()
	if os.Getenv("GYRE_BENCH_SHARED_CPUS") != "" {
		tb.Logf("the control plane and the benchmark share every CPU (GYRE_BENCH_SHARED_CPUS)")
		return
	}
	cpus, _ := ownCPUs()
	undo, err := c.PinApart()
	if err != nil {
		tb.Logf("the control plane and the benchmark share the CPUs: %v", err)
		return
	}
	tb.Cleanup(undo)
	tb.Logf("the control plane runs on CPUs %v, the benchmark and gyre on CPUs %v", cpus[:len(cpus)/2], cpus[len(cpus)/2:])
}
