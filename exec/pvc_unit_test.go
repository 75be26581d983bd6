package exec

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestListAllowed: a listing gyre's role does not grant lets the run go
// ahead, any other failure stops the check and names what was listed.
func TestListAllowed(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantAllowed bool
		wantErr     string
	}{
		{name: "listed", wantAllowed: true},
		{name: "forbidden", err: apierrors.NewForbidden(schema.GroupResource{Resource: "persistentvolumes"}, "", errors.New("no rule"))},
		{name: "failed", err: errors.New("connection refused"), wantErr: "list PersistentVolumes for tenant PVC data: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			live := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if tt.err != nil {
						return tt.err
					}
					return c.List(ctx, list, opts...)
				},
			}).Build()
			allowed, err := listAllowed(context.Background(), live, &corev1.PersistentVolumeList{}, "PersistentVolumes", "tenant PVC data")
			g.Expect(allowed).To(Equal(tt.wantAllowed))
			if tt.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(tt.wantErr))
			}
		})
	}
}
