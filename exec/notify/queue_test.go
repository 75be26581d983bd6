package notify

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

func TestQueue(t *testing.T) {
	run := func(uid types.UID) *cyclonev1alpha1.WorkflowRun {
		return &cyclonev1alpha1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-acme", Name: "run1", UID: uid}}
	}
	succeeded := cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}

	t.Run("A send starts once, runs in the background, wakes its run when it ends, and keeps its outcome until dropped.", func(t *testing.T) {
		g := NewWithT(t)
		q := NewQueue()
		var sends atomic.Int32
		release := make(chan struct{})
		send := func(context.Context) cyclonev1alpha1.NotificationStatus {
			sends.Add(1)
			<-release
			return succeeded
		}
		_, ok := q.Outcome(run("u1"), "Webhook:a", send)
		g.Expect(ok).To(BeFalse(), "the send is under way")
		_, ok = q.Outcome(run("u1"), "Webhook:a", send)
		g.Expect(ok).To(BeFalse())
		g.Expect(q.Known(run("u1"), "Webhook:a")).To(BeTrue())
		close(release)
		var woken event.GenericEvent
		g.Eventually(q.done).WithTimeout(10*time.Second).Should(Receive(&woken), "the run is woken")
		g.Expect(woken.Object.GetNamespace() + "/" + woken.Object.GetName()).To(Equal("cyclone-acme/run1"))
		st, ok := q.Outcome(run("u1"), "Webhook:a", send)
		g.Expect(ok).To(BeTrue())
		g.Expect(st).To(Equal(succeeded))
		g.Expect(sends.Load()).To(BeEquivalentTo(1), "a second look never sends again")
		q.Drop(run("u1"), "Webhook:a")
		g.Expect(q.Known(run("u1"), "Webhook:a")).To(BeFalse())
	})
	t.Run("A run deleted and created again under its name starts afresh.", func(t *testing.T) {
		g := NewWithT(t)
		q := NewQueue()
		block := make(chan struct{})
		defer close(block)
		q.Outcome(run("u1"), "Email:ops@example.com", func(context.Context) cyclonev1alpha1.NotificationStatus { <-block; return succeeded })
		g.Expect(q.Known(run("u1"), "Email:ops@example.com")).To(BeTrue())
		g.Expect(q.Known(run("u2"), "Email:ops@example.com")).To(BeFalse())
		q.Forget(types.NamespacedName{Namespace: "cyclone-acme", Name: "run1"})
		g.Expect(q.Known(run("u1"), "Email:ops@example.com")).To(BeFalse())
	})
}
