package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	ssautils "github.com/fluxcd/pkg/ssa/utils"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gyreops/gyre/internal/convention"
)

// IsSecret tells whether gvk is a core Secret. gyre may neither list nor
// watch Secrets (config/rbac), not even their metadata: a Secret is read
// by name, from the API server, and never kept in a cache. A Live cache
// must therefore not be asked for one, and the applier takes the read
// and diff path for Secrets.
func IsSecret(gvk schema.GroupVersionKind) bool {
	return gvk.Group == "" && gvk.Kind == "Secret"
}

// Stamp sets convention.DigestAnnotation on o to the digest of o without it.
func Stamp(o *unstructured.Unstructured) error {
	a := o.GetAnnotations()
	delete(a, convention.DigestAnnotation)
	if len(a) == 0 {
		a = nil
	}
	o.SetAnnotations(a)
	// encoding/json sorts map keys, so equal objects get equal digests.
	data, err := json.Marshal(o.Object)
	if err != nil {
		return fmt.Errorf("digest %s: %w", ssautils.FmtUnstructured(o), err)
	}
	sum := sha256.Sum256(data)
	if a == nil {
		a = map[string]string{}
	}
	a[convention.DigestAnnotation] = "sha256:" + hex.EncodeToString(sum[:])
	o.SetAnnotations(a)
	return nil
}

// digestOf is o's convention.DigestAnnotation, or "" when it has none. It
// reads the annotation in place: GetAnnotations copies every annotation,
// and a full check reads the digest of every object gyre applies.
func digestOf(o *unstructured.Unstructured) string {
	d, _, _ := unstructured.NestedString(o.Object, "metadata", "annotations", convention.DigestAnnotation)
	return d
}

// LastWriteIsOurs reports whether manager's last apply of an object is at
// least as recent as every other manager's write to it. Writes to
// subresources (status, scale) do not count: gyre never applies them.
// Managed-field times have a resolution of a second, so a write in the
// same second as gyre's counts as someone else's.
func LastWriteIsOurs(fields []metav1.ManagedFieldsEntry, manager string) bool {
	var ours time.Time
	for _, f := range fields {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply && f.Time != nil {
			ours = f.Time.Time
		}
	}
	if ours.IsZero() {
		return false
	}
	for _, f := range fields {
		if f.Manager == manager || f.Subresource != "" || f.Time == nil {
			continue
		}
		if !f.Time.Time.Before(ours) {
			return false
		}
	}
	return true
}
