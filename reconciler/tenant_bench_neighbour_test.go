package reconciler

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// neighbourEnv asks benchTenants to run its replays beside a neighbour: a
// process on the benchmark's CPUs that allocates, with a live heap about
// the size of gyre's, for the given share of a CPU (GYRE_BENCH_NEIGHBOUR=0.3).
// The benchmark's CPUs are not the control plane's, but on a virtual
// machine they still share caches and memory with it: a busy neighbour
// slows the API server. gyre's convergence is such a neighbour (0.29 to
// 0.34 of a CPU), the replay's own client half of one (0.13 to 0.16, as
// the benchmark logs): with a neighbour of the difference, the replay
// tells what the same writes cost with the other CPUs as busy as gyre
// keeps them.
const neighbourEnv = "GYRE_BENCH_NEIGHBOUR"

// neighbourChildEnv carries the share to the neighbour process.
const neighbourChildEnv = "GYRE_BENCH_NEIGHBOUR_CHILD"

// neighbour is a running neighbour process.
type neighbour struct {
	cmd   *exec.Cmd
	start time.Time
}

// startNeighbour starts a neighbour when neighbourEnv asks for one, and
// returns nil otherwise.
func startNeighbour(b *testing.B) *neighbour {
	share := os.Getenv(neighbourEnv)
	if share == "" {
		return nil
	}
	if s, err := strconv.ParseFloat(share, 64); err != nil || s <= 0 || s > 1 {
		b.Fatalf("%s=%q: want a share of a CPU, over 0 and at most 1", neighbourEnv, share)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestTenantReconcilerBenchNeighbour$", "-test.timeout", "60m")
	cmd.Env = append(os.Environ(), neighbourChildEnv+"="+share)
	cmd.Stderr = os.Stderr
	// It runs until killed: by stop, or with this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the neighbour: %v", err)
	}
	n := &neighbour{cmd: cmd}
	b.Cleanup(func() { n.stop() }) // a replay that fails stops it too
	// The neighbour builds its heap before it is counted on.
	time.Sleep(2 * time.Second)
	n.start = time.Now()
	return n
}

// stop ends the neighbour, and returns about the share of a CPU it used
// since it was counted on (its heap, built before, adds a little).
// Stopping it again changes nothing.
func (n *neighbour) stop() float64 {
	if n == nil || n.cmd.ProcessState != nil {
		return 0
	}
	elapsed := time.Since(n.start)
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	st := n.cmd.ProcessState
	return (st.UserTime() + st.SystemTime()).Seconds() / elapsed.Seconds()
}

// neighbourNode is the neighbour's heap: pointers, which a collection
// must follow, as it must through gyre's caches.
type neighbourNode struct {
	next *neighbourNode
	_    [48]byte // about the size of a small object of gyre's
}

// TestTenantReconcilerBenchNeighbour is the neighbour process of
// startNeighbour; without its share in the environment it is skipped. It
// runs until killed.
func TestTenantReconcilerBenchNeighbour(t *testing.T) {
	share, err := strconv.ParseFloat(os.Getenv(neighbourChildEnv), 64)
	if err != nil {
		t.Skip("the neighbour of BenchmarkTenantReconciler's replays; runs only beside them")
	}
	heap := make([]*neighbourNode, 1<<20) // about 72 MiB, gyre's live heap at 500 tenants
	for i := range heap {
		heap[i] = &neighbourNode{}
	}
	// Held to its share by its own CPU time, collections included, which
	// a fixed duty cycle would not count.
	start, base := time.Now(), processCPU()
	for {
		if (processCPU() - base).Seconds() < share*time.Since(start).Seconds() {
			for range 1000 {
				heap[rand.IntN(len(heap))] = &neighbourNode{next: heap[rand.IntN(len(heap))]}
			}
			continue
		}
		time.Sleep(time.Millisecond)
	}
}
