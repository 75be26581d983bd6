package status

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
)

func TestOnConflict(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "gyre.dev", Resource: "tenants"}, "t", errors.New("changed"))
	tests := []struct {
		name    string
		result  ctrl.Result
		err     error
		want    ctrl.Result
		wantErr bool
	}{
		{name: "A conflict requeues soon, without an error to back off on.", err: conflict, want: ctrl.Result{RequeueAfter: ConflictRequeue}},
		{name: "A conflict joined with another error still requeues soon.", err: errors.Join(errors.New("apply"), conflict), want: ctrl.Result{RequeueAfter: ConflictRequeue}},
		{name: "Any other error passes through for backoff.", err: errors.New("boom"), wantErr: true},
		{name: "Success keeps its result.", result: ctrl.Result{RequeueAfter: time.Hour}, want: ctrl.Result{RequeueAfter: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := OnConflict(tt.result, tt.err)
			g.Expect(err != nil).To(Equal(tt.wantErr))
			if !tt.wantErr {
				g.Expect(got).To(Equal(tt.want))
			}
		})
	}
}
