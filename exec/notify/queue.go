package notify

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// maxInFlight caps the sends under way at once, so that a burst of
// finished runs towards a slow receiver does not pile up connections
// without end.
const maxInFlight = 32

// Poll is how often a run whose sends are under way should be looked at
// even without a wake: a wake that finds the queue's channel full is
// dropped.
const Poll = 5 * time.Second

// Queue sends notifications and delegation requests away from the
// reconcile workers. A receiver that takes its time (a webhook near its
// timeout, a mail server that stalls, a delegation service that does not
// answer) would otherwise hold a worker, and with it every run queued
// behind. A reconcile starts the sends of a run and returns; each send
// that ends wakes the run (Source), whose next reconcile records the
// outcome in its status.
//
// Outcomes live in memory until recorded: a crash in between loses them,
// and the restarted engine sends again. Delivery stays at least once.
type Queue struct {
	mu sync.Mutex
	// byRun maps a run to its sends by key, for the run's UID: a run
	// deleted and created again under the same name starts afresh.
	byRun map[types.NamespacedName]*runSends
	slots chan struct{}
	// done wakes a run whose send has ended.
	done chan event.GenericEvent
}

type runSends struct {
	uid   types.UID
	sends map[string]*send
}

// send is one send; status is set once it has ended.
type send struct {
	status *cyclonev1alpha1.NotificationStatus
}

// NewQueue returns an empty Queue.
func NewQueue() *Queue {
	return &Queue{
		byRun: map[types.NamespacedName]*runSends{},
		slots: make(chan struct{}, maxInFlight),
		// Large enough for every send in flight; a wake that finds it full
		// is not lost, the run's Poll covers it.
		done: make(chan event.GenericEvent, 4*maxInFlight),
	}
}

// Source wakes runs whose sends ended.
func (q *Queue) Source() source.Source {
	return source.Channel(q.done, &handler.EnqueueRequestForObject{})
}

// Outcome returns the outcome of the send of run to key, starting the
// send with fn when none is under way (fn may be nil when the caller
// knows one was started). ok is false while the send runs.
func (q *Queue) Outcome(run *cyclonev1alpha1.WorkflowRun, key string, fn func(context.Context) cyclonev1alpha1.NotificationStatus) (st cyclonev1alpha1.NotificationStatus, ok bool) {
	name := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	q.mu.Lock()
	defer q.mu.Unlock()
	rs := q.byRun[name]
	if rs == nil || rs.uid != run.UID {
		rs = &runSends{uid: run.UID, sends: map[string]*send{}}
		q.byRun[name] = rs
	}
	if s := rs.sends[key]; s != nil {
		if s.status == nil {
			return st, false
		}
		return *s.status, true
	}
	s := &send{}
	rs.sends[key] = s
	wake := &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: run.Namespace, Name: run.Name}}
	go func() {
		q.slots <- struct{}{}
		// A send is bounded by its client's timeouts; it is not tied to a
		// reconcile, which returns long before.
		result := fn(context.Background())
		<-q.slots
		q.mu.Lock()
		s.status = &result
		q.mu.Unlock()
		select {
		case q.done <- event.GenericEvent{Object: wake}:
		default:
		}
	}()
	return st, false
}

// Known reports whether a send of run to key was started by this queue
// and is still kept, ended or not.
func (q *Queue) Known(run *cyclonev1alpha1.WorkflowRun, key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	rs := q.byRun[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]
	return rs != nil && rs.uid == run.UID && rs.sends[key] != nil
}

// Drop forgets the send of run to key once its outcome is recorded.
func (q *Queue) Drop(run *cyclonev1alpha1.WorkflowRun, key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if rs := q.byRun[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]; rs != nil && rs.uid == run.UID {
		delete(rs.sends, key)
	}
}

// Forget drops what is kept for a run: its outcomes are recorded, or the
// run is gone.
func (q *Queue) Forget(name types.NamespacedName) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.byRun, name)
}
