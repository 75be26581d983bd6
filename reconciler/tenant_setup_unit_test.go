package reconciler

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
)

func TestDropFieldSets(t *testing.T) {
	now := time.Now()
	fields := func(other time.Time) []metav1.ManagedFieldsEntry {
		set := metav1.NewFieldsV1(`{"f:data":{"f:key":{}}}`)
		return []metav1.ManagedFieldsEntry{
			{Manager: convention.FieldManager, Operation: metav1.ManagedFieldsOperationApply, Time: &metav1.Time{Time: now}, FieldsType: "FieldsV1", FieldsV1: set},
			{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: &metav1.Time{Time: other}, FieldsType: "FieldsV1", FieldsV1: set},
		}
	}
	for _, tc := range []struct {
		name  string
		other time.Time
		ours  bool
	}{
		{"An object gyre applied last is still gyre's own write without its field sets.", now.Add(-time.Minute), true},
		{"An object someone edited after gyre's apply is still someone else's write without its field sets.", now.Add(time.Minute), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := &metav1.PartialObjectMetadata{}
			m.SetManagedFields(fields(tc.other))
			out, err := dropFieldSets(m)
			g.Expect(err).NotTo(HaveOccurred())
			got := out.(*metav1.PartialObjectMetadata).GetManagedFields()
			g.Expect(got).To(HaveLen(2))
			for _, f := range got {
				g.Expect(f.FieldsV1).To(BeNil())
			}
			g.Expect(apply.LastWriteIsOurs(got, convention.FieldManager)).To(Equal(tc.ours))
		})
	}
}
