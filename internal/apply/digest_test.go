package apply

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLastWriteIsOurs(t *testing.T) {
	at := func(s int) *metav1.Time { tm := metav1.Unix(int64(s), 0); return &tm }
	applyOp := metav1.ManagedFieldsOperationApply
	update := metav1.ManagedFieldsOperationUpdate
	for _, tc := range []struct {
		name   string
		fields []metav1.ManagedFieldsEntry
		ours   bool
	}{
		{"gyre's apply alone is ours.", []metav1.ManagedFieldsEntry{{Manager: "gyre", Operation: applyOp, Time: at(10)}}, true},
		{"A later edit is someone else's.", []metav1.ManagedFieldsEntry{{Manager: "gyre", Operation: applyOp, Time: at(10)}, {Manager: "kubectl-edit", Operation: update, Time: at(11)}}, false},
		{"An edit in the same second counts as someone else's.", []metav1.ManagedFieldsEntry{{Manager: "gyre", Operation: applyOp, Time: at(10)}, {Manager: "kubectl-edit", Operation: update, Time: at(10)}}, false},
		{"An older edit that gyre overwrote is ours.", []metav1.ManagedFieldsEntry{{Manager: "kubectl-edit", Operation: update, Time: at(9)}, {Manager: "gyre", Operation: applyOp, Time: at(10)}}, true},
		{"A status write by another controller does not count.", []metav1.ManagedFieldsEntry{{Manager: "gyre", Operation: applyOp, Time: at(10)}, {Manager: "exec", Operation: update, Subresource: "status", Time: at(12)}}, true},
		{"An object gyre never applied is not ours.", []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: update, Time: at(10)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(LastWriteIsOurs(tc.fields, "gyre")).To(Equal(tc.ours))
		})
	}
}
