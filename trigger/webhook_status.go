package trigger

import (
	"context"
	"sync"

	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/status"
)

// tally counts the runs webhook deliveries start in their triggers'
// status.
//
// Deliveries for one trigger arrive together (a push of many branches, a
// burst of redeliveries), and each status write is a read-modify-write
// under an optimistic lock. Writing once per run would make them conflict
// and retry each other; instead the runs started while a write is in
// flight wait in pending and the next write records them all at once.
type tally struct {
	client client.Client
	reader client.Reader

	mu sync.Mutex
	// triggers holds an entry per trigger that ever fired here: a few
	// words each, kept so a trigger's writes always share one lock.
	triggers map[client.ObjectKey]*triggerTally
}

// triggerTally is the pending count of one trigger.
type triggerTally struct {
	// write is held while the trigger's status is written.
	write sync.Mutex

	mu      sync.Mutex
	pending int
	last    cyclonev1alpha1.FiredRun
}

func newTally(c client.Client, reader client.Reader) *tally {
	return &tally{client: c, reader: reader, triggers: map[client.ObjectKey]*triggerTally{}}
}

// record counts run in the status of trigger key. It returns once the
// count is written, by this call or by one that took it along.
func (t *tally) record(ctx context.Context, key client.ObjectKey, run cyclonev1alpha1.FiredRun) error {
	t.mu.Lock()
	tt, ok := t.triggers[key]
	if !ok {
		tt = &triggerTally{}
		t.triggers[key] = tt
	}
	t.mu.Unlock()

	tt.mu.Lock()
	tt.pending++
	if tt.last.Time == nil || !run.Time.Before(tt.last.Time) {
		tt.last = run
	}
	tt.mu.Unlock()

	tt.write.Lock()
	defer tt.write.Unlock()
	tt.mu.Lock()
	n, last := tt.pending, tt.last
	tt.pending = 0
	tt.mu.Unlock()
	if n == 0 {
		return nil // an earlier write took this run along
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &cyclonev1alpha1.WorkflowTrigger{}
		if err := t.reader.Get(ctx, key, cur); err != nil {
			return err
		}
		base := cur.DeepCopy()
		cur.Status.Count += n
		cur.Status.LastFired = &last
		cur.Status.LastError = ""
		_, err := status.Patch(ctx, t.client, base, cur)
		return err
	})
	if err != nil {
		// Keep the count for the next write rather than lose it.
		tt.mu.Lock()
		tt.pending += n
		tt.mu.Unlock()
	}
	return err
}
