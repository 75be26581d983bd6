package exec

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

// maxDeliveries caps the notifications being sent at once, so that a
// burst of finished runs towards a slow receiver does not pile up
// connections without end.
const maxDeliveries = 32

// deliveries sends notifications and delegation requests away from the
// reconcile workers. A receiver that takes its time (a webhook near its
// timeout, a mail server that stalls, a delegation service that does not
// answer) would otherwise hold a worker, and with it every run queued
// behind. A reconcile starts the sends of a finished run and
// returns; each send that ends wakes the run, whose next reconcile
// records the outcome in its status.
//
// Outcomes live in memory until recorded: a crash in between loses them,
// and the restarted engine sends again. Delivery stays at least once.
type deliveries struct {
	mu sync.Mutex
	// byRun maps a run to its sends by receiver key, for the run's UID:
	// a run deleted and created again under the same name starts afresh.
	byRun map[types.NamespacedName]*runDeliveries
	slots chan struct{}
	// done wakes a run whose send has ended.
	done chan event.GenericEvent
}

type runDeliveries struct {
	uid   types.UID
	sends map[string]*delivery
}

// delivery is one send; status is set once it has ended.
type delivery struct {
	status *cyclonev1alpha1.NotificationStatus
}

func newDeliveries() *deliveries {
	return &deliveries{
		byRun: map[types.NamespacedName]*runDeliveries{},
		slots: make(chan struct{}, maxDeliveries),
		// Large enough for every send in flight; a wake that finds it full
		// is not lost, the run's periodic wake covers it (see notify).
		done: make(chan event.GenericEvent, 4*maxDeliveries),
	}
}

// source wakes runs whose sends ended.
func (d *deliveries) source() source.Source {
	return source.Channel(d.done, &handler.EnqueueRequestForObject{})
}

// outcome returns the outcome of the send of run to key, starting the send
// with send when none is under way. ok is false while the send runs.
func (d *deliveries) outcome(run *cyclonev1alpha1.WorkflowRun, key string, send func(context.Context) cyclonev1alpha1.NotificationStatus) (st cyclonev1alpha1.NotificationStatus, ok bool) {
	name := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	d.mu.Lock()
	defer d.mu.Unlock()
	rd := d.byRun[name]
	if rd == nil || rd.uid != run.UID {
		rd = &runDeliveries{uid: run.UID, sends: map[string]*delivery{}}
		d.byRun[name] = rd
	}
	if s := rd.sends[key]; s != nil {
		if s.status == nil {
			return st, false
		}
		return *s.status, true
	}
	s := &delivery{}
	rd.sends[key] = s
	wake := &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: run.Namespace, Name: run.Name}}
	go func() {
		d.slots <- struct{}{}
		// A send is bounded by its client's timeouts; it is not tied to a
		// reconcile, which returns long before.
		result := send(context.Background())
		<-d.slots
		d.mu.Lock()
		s.status = &result
		d.mu.Unlock()
		select {
		case d.done <- event.GenericEvent{Object: wake}:
		default:
		}
	}()
	return st, false
}

// known reports whether a send of run to key was started by this engine
// and is still kept, ended or not.
func (d *deliveries) known(run *cyclonev1alpha1.WorkflowRun, key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	rd := d.byRun[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]
	return rd != nil && rd.uid == run.UID && rd.sends[key] != nil
}

// drop forgets the send of run to key once its outcome is recorded.
func (d *deliveries) drop(run *cyclonev1alpha1.WorkflowRun, key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if rd := d.byRun[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]; rd != nil && rd.uid == run.UID {
		delete(rd.sends, key)
	}
}

// forget drops what is kept for a run: its outcomes are recorded, or the
// run is gone.
func (d *deliveries) forget(name types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.byRun, name)
}

// deliveryPoll is how often a run whose sends are under way is looked at
// even without a wake.
const deliveryPoll = 5 * time.Second
