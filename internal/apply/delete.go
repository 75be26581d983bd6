package apply

import (
	"context"

	"github.com/fluxcd/pkg/ssa"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// DeleteOptions says which of the objects given to Delete go.
type DeleteOptions struct {
	// Inclusions are labels (key and value) every deleted object must
	// carry as it is live: an object whose labels name another owner is
	// not the caller's any more, and is skipped.
	Inclusions map[string]string
	// Exclusions are labels or annotations (key and value) that keep an
	// object.
	Exclusions map[string]string
}

// Delete deletes objs in reverse apply order, in the background, and
// reports what it did to each: deleted, or skipped for its live labels
// or annotations.
func (a *Applier) Delete(ctx context.Context, objs []*unstructured.Unstructured, o DeleteOptions) (*ssa.ChangeSet, error) {
	// No status poller: nothing waits for the deletions.
	m := ssa.NewResourceManager(a.Client, nil, a.Owner)
	m.SetConcurrency(a.concurrency())
	return m.DeleteAll(ctx, objs, ssa.DeleteOptions{
		PropagationPolicy: metav1.DeletePropagationBackground,
		Inclusions:        o.Inclusions,
		Exclusions:        o.Exclusions,
	})
}
