package exec

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// expectationTimeout is how long a Pod the engine created may stay out of
// its cache before a round creates it again. Creations reach the cache in
// milliseconds to seconds; a Pod deleted by someone else before the cache
// saw it waits this long for its next attempt.
const expectationTimeout = 30 * time.Second

// podExpectations remembers the Pods the engine created that its cache has
// not shown yet, as Kubernetes' ReplicaSet controller does. A round of a
// run that comes before the cache has caught up with an earlier round's
// creates derives the same Pods again: the status write that would record
// them may be held back (see holdBack). Without this it sends each create
// again, gets AlreadyExists, and reads the Pod from the API server to adopt
// it: under load that was a fifth of the engine's Pod creates, each with a
// read.
type podExpectations struct {
	mu   sync.Mutex
	pods map[types.NamespacedName]expectation
}

// expectation is a Pod created for the run of uid, in the reconcile of the
// run named run, at at.
type expectation struct {
	run types.NamespacedName
	uid types.UID
	at  time.Time
}

// created records that the Pod pod was created for the run.
func (e *podExpectations) created(run types.NamespacedName, uid types.UID, pod types.NamespacedName, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pods == nil {
		e.pods = map[types.NamespacedName]expectation{}
	}
	e.pods[pod] = expectation{run: run, uid: uid, at: now}
}

// pending reports whether pod was created for the run of uid and the
// cache has not shown it yet, within expectationTimeout.
func (e *podExpectations) pending(uid types.UID, pod types.NamespacedName, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.pods[pod]
	if !ok {
		return false
	}
	if now.Sub(x.at) >= expectationTimeout {
		delete(e.pods, pod)
		return false
	}
	return x.uid == uid
}

// observed forgets pod: the cache has shown it, or its deletion.
func (e *podExpectations) observed(pod types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pods, pod)
}

// forgetRun forgets the Pods of the run named run, which finished, went,
// or is another shard's.
func (e *podExpectations) forgetRun(run types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for pod, x := range e.pods {
		if x.run == run {
			delete(e.pods, pod)
		}
	}
}
