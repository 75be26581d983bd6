package exec

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// tenantLoad keeps Config.TenantParallelism exact within one engine.
// The cache alone cannot: it shows another run's status as of its last
// event, and the write that recorded that run's newest attempts may not
// have arrived yet, so two runs of one tenant each see room for the same
// slot and the tenant runs more stages than its cap. The engine is the
// only writer of its runs' statuses, so what it decided last for a run is
// newer than any cached status of that run: tenantLoad records that, and
// one lock per tenant makes counting the other runs' stages and starting
// this run's one step.
//
// A run the cap holds back is woken when another run of its tenant ends
// a stage, as a semaphore wakes its waiters, rather than at its next
// look WaitInterval later: a slot does not stand idle for seconds. Like a
// semaphore it wakes one waiter per slot freed, the longest held back
// first: a tenant with thousands of runs held back does not have them
// all reconciled, each counting all the others, whenever a stage ends.
type tenantLoad struct {
	mu      sync.Mutex
	tenants map[string]*sync.Mutex // by namespace; never removed, one per tenant
	runs    map[types.NamespacedName]runLoad
	// waiting holds, by namespace, the runs whose last round the cap
	// held back, each with its place in line: a woken run that finds its
	// slot taken keeps its place.
	waiting map[string]map[types.NamespacedName]uint64
	line    uint64
	// wake enqueues the runs woken; see source.
	wake chan event.GenericEvent
}

// newTenantLoad returns an empty tenantLoad.
func newTenantLoad() *tenantLoad {
	return &tenantLoad{
		tenants: map[string]*sync.Mutex{},
		runs:    map[types.NamespacedName]runLoad{},
		waiting: map[string]map[types.NamespacedName]uint64{},
		wake:    make(chan event.GenericEvent, 1024),
	}
}

// source enqueues the runs a freed slot wakes. A wake that finds the
// channel full is dropped: the run still looks again after WaitInterval.
func (l *tenantLoad) source() source.Source {
	return source.Channel(l.wake, &handler.EnqueueRequestForObject{})
}

// runLoad is how many stages a run had active when the engine last
// decided its round, and which run that was: a run deleted and created
// again under its name starts with none.
type runLoad struct {
	uid    types.UID
	active int
}

// lock takes the lock of the tenant of namespace ns and returns its
// release. A run's round holds it from counting the tenant's active
// stages to recording its own (see progress), which includes building
// the new attempts' Pods and the live reads of Secrets that takes: the
// rounds of one tenant's runs that may start stages go one at a time,
// the price of an exact cap; other tenants' rounds do not wait.
func (l *tenantLoad) lock(ns string) func() {
	l.mu.Lock()
	m := l.tenants[ns]
	if m == nil {
		m = &sync.Mutex{}
		l.tenants[ns] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// record sets the number of stages run has active as the engine decided
// them (attempts whose Pods are about to be created count already), and
// whether the cap held it back. Fewer than recorded before frees slots:
// the tenant's runs held back are woken.
func (l *tenantLoad) record(run *cyclonev1alpha1.WorkflowRun, st *cyclonev1alpha1.WorkflowRunStatus, capped bool) {
	n := 0
	if !convention.Finished(st.Overall.Phase) {
		for _, ss := range st.Stages {
			if active(ss) {
				n++
			}
		}
	}
	key := client.ObjectKeyFromObject(run)
	l.mu.Lock()
	prev, had := l.runs[key]
	l.runs[key] = runLoad{uid: run.UID, active: n}
	w := l.waiting[run.Namespace]
	if capped {
		if w == nil {
			w = map[types.NamespacedName]uint64{}
			l.waiting[run.Namespace] = w
		}
		if _, ok := w[key]; !ok {
			l.line++
			w[key] = l.line
		}
	} else {
		delete(w, key)
	}
	var woken []types.NamespacedName
	if had && prev.uid == run.UID && n < prev.active {
		woken = l.first(run.Namespace, prev.active-n, key)
	}
	l.mu.Unlock()
	l.send(woken)
}

// forget drops what is recorded of the run key, gone or no longer this
// engine's; the slots it held free.
func (l *tenantLoad) forget(key types.NamespacedName) {
	l.mu.Lock()
	prev, had := l.runs[key]
	delete(l.runs, key)
	delete(l.waiting[key.Namespace], key)
	var woken []types.NamespacedName
	if had && prev.active > 0 {
		woken = l.first(key.Namespace, prev.active, key)
	}
	l.mu.Unlock()
	l.send(woken)
}

// first returns the n runs held back longest in namespace ns, but the
// run freeing the slots. They stay in line until a round of theirs
// starts what the cap held back. The caller holds l.mu.
func (l *tenantLoad) first(ns string, n int, freeing types.NamespacedName) []types.NamespacedName {
	w := l.waiting[ns]
	keys := make([]types.NamespacedName, 0, len(w))
	for k := range w {
		if k != freeing {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return cmp.Compare(w[a], w[b]) })
	return keys[:min(n, len(keys))]
}

// send enqueues the runs keys.
func (l *tenantLoad) send(keys []types.NamespacedName) {
	for _, k := range keys {
		select {
		case l.wake <- event.GenericEvent{Object: &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}}:
		default:
		}
	}
}

// others counts the stage attempts in flight in the other runs of run's
// tenant: as recorded for the runs this engine has decided, as cached for
// the rest (runs it has not reconciled since it started). The caller
// holds the tenant's lock.
func (l *tenantLoad) others(ctx context.Context, c client.Reader, run *cyclonev1alpha1.WorkflowRun) (int, error) {
	list := &cyclonev1alpha1.WorkflowRunList{}
	if err := c.List(ctx, list, client.InNamespace(run.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("list runs of tenant: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == run.UID {
			continue
		}
		if rec, ok := l.runs[client.ObjectKeyFromObject(other)]; ok && rec.uid == other.UID {
			n += rec.active
			continue
		}
		if convention.Finished(other.Status.Overall.Phase) {
			continue
		}
		for _, ss := range other.Status.Stages {
			if active(ss) {
				n++
			}
		}
	}
	return n, nil
}
