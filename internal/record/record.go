// Package record keeps gyre's Kubernetes events apart when their notes
// differ.
//
// The events.k8s.io recorder folds an event into the previous one of the
// same object, type, reason and action seen in the last six minutes: it
// only counts it, and the new note is never written. For gyre that hides
// what users look for: the second target's "Applied" event, the revision
// a Repository fetched a minute after the last, the run a cron trigger
// started. Distinct makes the action carry a digest of the note, so only
// true repeats (same note) are folded, as core/v1 event aggregation does.
package record

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// Distinct wraps r so that events with different notes are recorded as
// different events.
func Distinct(r events.EventRecorder) events.EventRecorder {
	return distinct{r}
}

type distinct struct{ next events.EventRecorder }

// Eventf records the event with the note's digest appended to action.
func (d distinct) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	msg := fmt.Sprintf(note, args...)
	sum := sha256.Sum256([]byte(msg))
	d.next.Eventf(regarding, related, eventtype, reason, action+"/"+hex.EncodeToString(sum[:4]), "%s", msg)
}
