package render

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Error is one reason a target does not render: a file the render refused
// or an object that failed validation. Every field but Message may be
// empty when it does not apply.
type Error struct {
	// File is the source file, relative to the repository root.
	File string `json:"file,omitempty"`
	// Kind and Name identify the object.
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	// Field is the path of the offending field, such as spec.stages[1].name.
	Field string `json:"field,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// Error formats the error as "file: Kind/name: field: message", leaving
// out the parts that are empty.
func (e Error) Error() string {
	parts := make([]string, 0, 4)
	if e.File != "" {
		parts = append(parts, e.File)
	}
	if e.Kind != "" || e.Name != "" {
		parts = append(parts, e.Kind+"/"+e.Name)
	}
	if e.Field != "" {
		parts = append(parts, e.Field)
	}
	parts = append(parts, e.Message)
	return strings.Join(parts, ": ")
}

// Errors is every reason a target does not render.
type Errors []Error

// Error joins the errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Result is the rendering of one target. Objects is empty whenever Errors
// is not: a target renders completely or not at all.
type Result struct {
	// Target that was rendered.
	Target Target `json:"target"`
	// Dir is the directory the target rendered, relative to the
	// repository root.
	Dir string `json:"dir,omitempty"`
	// Objects, sorted in apply order (see Sort).
	Objects []*unstructured.Unstructured `json:"-"`
	// Digest is "sha256:<hex>" of the objects' JSON before the revision
	// stamp, one per line in order, and of the revision; it changes
	// exactly when the objects do. Empty when Errors is not.
	Digest string `json:"digest,omitempty"`
	// Errors are every reason the target did not render.
	Errors Errors `json:"errors,omitempty"`
	// Warnings are what will go wrong when the target's pipelines run,
	// though nothing in the YAML is invalid: a stage that needs more
	// than the Tenant's Pod Security level gives it, say. They stop
	// nothing; the objects are applied all the same.
	Warnings Errors `json:"warnings,omitempty"`
}

// Err returns the result's errors as one error, or nil.
func (r *Result) Err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	return r.Errors
}

// fail records errors and drops any objects: no partial output.
func (r *Result) fail(errs ...Error) {
	r.Errors = append(r.Errors, errs...)
	r.Objects = nil
	r.Digest = ""
}
