// Package status writes the status of gyre's objects the one way every
// controller does: at most one JSON merge patch per reconcile, sent only
// when the status changed, locked on the resourceVersion the reconcile
// started from, and a conflict answered with the same short requeue.
//
// gyre is the only writer of the status of its objects, so it needs no
// per-condition merging (fluxcd/pkg/runtime/patch's SerialPatcher); what
// it needs is the lock: a reconcile that started from an object older
// than the last write, or a second replica recording the same cron times,
// must not overwrite what it did not see.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ConflictRequeue is how soon an object whose status write conflicted is
// reconciled again: long enough for the cache to catch up with the write
// it missed, short enough that nobody notices.
const ConflictRequeue = 100 * time.Millisecond

// Patch writes obj's status when it differs from base's, base being obj
// as the reconcile read it. The patch carries base's resourceVersion, so
// it fails with a conflict when obj changed since. It reports whether it
// sent anything; on success obj holds the server's answer.
func Patch(ctx context.Context, c client.Client, base, obj client.Object, opts ...client.SubResourcePatchOption) (bool, error) {
	data, err := client.MergeFrom(base).Data(obj)
	if err != nil {
		return false, fmt.Errorf("status patch of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return false, fmt.Errorf("status patch of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	if _, ok := fields["status"]; !ok {
		return false, nil
	}
	return true, c.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), opts...)
}

// OnConflict turns a conflict into a requeue after ConflictRequeue with
// no error, so that it neither logs as a failure nor backs off; any other
// outcome passes through.
func OnConflict(result ctrl.Result, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: ConflictRequeue}, nil
	}
	return result, err
}
