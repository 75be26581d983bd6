package exec

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// runsPerReportDelay is how many runs in progress stretch the status
// report delay by RunningReportDelay once more (see reportDelay).
const runsPerReportDelay = 20

// reportDelay is how long a run's status write may wait for more changes
// (holdBack, foldGC) and how long a stage's Pod runs before the stage
// shows Running: RunningReportDelay, stretched by a further
// RunningReportDelay for every full runsPerReportDelay runs in progress on this
// engine, up to MaxRunningReportDelay.
//
// Under load every stage Pod takes seconds to be scheduled, run and seen
// to end, and a one-second hold ends before the next stage does: each
// wave of a run's stages then costs a status write of its own, and each
// of those writes is a request, a watch event to every watcher and an
// etcd revision on an API server that is already the bottleneck. Waiting
// longer then lets one write carry several waves, and costs little: with
// hundreds of runs in progress nobody watches one run by the second. A
// quiet engine keeps the short delay, so that a run watched alone shows
// every stage as it goes. The count is the load the engine makes, not a
// measure of the API server, so that the delay does not shrink because
// the longer delay made writes cheaper.
func (r *Engine) reportDelay() time.Duration {
	base := r.cfg.RunningReportDelay
	if base <= 0 {
		return base
	}
	// Whole steps: an engine with fewer than runsPerReportDelay runs in
	// progress keeps the base delay exactly.
	d := base + base*time.Duration(r.inProgress.count()/runsPerReportDelay)
	return max(base, min(d, r.cfg.MaxRunningReportDelay))
}

// runSet counts the runs in progress (see reportDelay). A run enters it
// when a round finds it unfinished and leaves it when it finishes, is
// deleted or leaves the engine's shard.
type runSet struct {
	runs sync.Map // types.NamespacedName → struct{}
	n    atomic.Int64
}

func (s *runSet) add(key types.NamespacedName) {
	if _, loaded := s.runs.LoadOrStore(key, struct{}{}); !loaded {
		s.n.Add(1)
	}
}

func (s *runSet) remove(key types.NamespacedName) {
	if _, loaded := s.runs.LoadAndDelete(key); loaded {
		s.n.Add(-1)
	}
}

func (s *runSet) count() int64 { return s.n.Load() }
