package apply

import (
	"context"
	"fmt"

	ssautils "github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gyreops/gyre/internal/convention"
)

// DryRun returns the live object (nil when there is none) and the object
// as Apply would leave it: a server-side apply dry run as Owner, of o
// stamped with its digest the way Apply stamps it. Because the owner and
// the stamp are Apply's, a dry run of what Apply last applied changes
// nothing, and a diff of the two shows only what Apply would change. o
// itself is not changed.
func (a *Applier) DryRun(ctx context.Context, o *unstructured.Unstructured) (live, dry *unstructured.Unstructured, err error) {
	want := o.DeepCopy()
	if want.GetAnnotations()[convention.DigestAnnotation] == "" {
		if err := Stamp(want); err != nil {
			return nil, nil, err
		}
	}
	live = &unstructured.Unstructured{}
	live.SetGroupVersionKind(o.GroupVersionKind())
	switch err := a.Client.Get(ctx, client.ObjectKeyFromObject(o), live); {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return nil, nil, fmt.Errorf("%s: %w", ssautils.FmtUnstructured(o), err)
	}
	dry = want.DeepCopy()
	err = a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(dry), client.FieldOwner(a.Owner.Field), client.ForceOwnership, client.DryRunAll)
	if apierrors.IsNotFound(err) && live == nil {
		// The namespace may not exist yet; then the object is simply new.
		return nil, want, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s dry-run failed: %w", ssautils.FmtUnstructured(o), err)
	}
	return live, dry, nil
}
