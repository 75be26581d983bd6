package record

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
)

// TestDistinct records two notes under one reason and one note twice: the
// two notes must both be written, and the repeat folded into a series.
func TestDistinct(t *testing.T) {
	g := NewWithT(t)
	cs := fake.NewClientset()
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.StartRecordingToSink(ctx.Done())
	defer b.Shutdown()
	rec := Distinct(b.NewRecorder(scheme.Scheme, "gyre-test"))

	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: "default", UID: "1"}}
	rec.Eventf(obj, nil, corev1.EventTypeNormal, "Applied", "Applied", "Target %s: applied", "one")
	rec.Eventf(obj, nil, corev1.EventTypeNormal, "Applied", "Applied", "Target %s: applied", "two")
	rec.Eventf(obj, nil, corev1.EventTypeNormal, "Applied", "Applied", "Target %s: applied", "one")

	notes := func() map[string]int32 {
		list, err := cs.EventsV1().Events("default").List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		out := map[string]int32{}
		for _, e := range list.Items {
			out[e.Note] = 1
			if e.Series != nil {
				out[e.Note] = e.Series.Count
			}
		}
		return out
	}
	g.Eventually(notes).WithTimeout(10 * time.Second).Should(Equal(map[string]int32{
		"Target one: applied": 2,
		"Target two: applied": 1,
	}))
}
