package template

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// secretRefRe matches Cyclone's secret reference, a whole value of the
// form "${secrets.<namespace>:<secret>/<path>[/<path>...]}".
var secretRefRe = regexp.MustCompile(`^\$\{secrets\.([a-z0-9][-a-z0-9.]*):([a-z0-9][-a-z0-9.]*)/([^}]+)\}$`)

// secretRef is a reference to a value in a Secret.
type secretRef struct {
	namespace, name string
	// path is a field of the Secret, "data.<key>" or "stringData.<key>",
	// then a dotted path into the JSON of that value for each further
	// element, as in Cyclone: "data.config/user.id".
	path []string
}

// parseSecretRef reads a secret reference; ok is false for any other
// value.
func parseSecretRef(value string) (ref secretRef, ok bool) {
	m := secretRefRe.FindStringSubmatch(strings.TrimSpace(value))
	if m == nil {
		return ref, false
	}
	return secretRef{namespace: m[1], name: m[2], path: strings.Split(m[3], "/")}, true
}

// ResolveSecretRefs replaces every value of values that is a secret
// reference by what it refers to. A run may read only the Secrets of its
// own namespace, its tenant's: a reference to another namespace would let
// one tenant read another's credentials. secrets holds those Secrets by
// name; what is missing is an error that names the value, never what a
// Secret holds. A resolved value never stays in values in clear: hide
// gives the stand-in that takes its place, and keeps the value where the
// caller wants it.
func ResolveSecretRefs(values map[string]string, namespace string, secrets map[string]*corev1.Secret, hide func(value string) string) error {
	// In key order, so that the same values get the same stand-ins.
	for _, k := range slices.Sorted(maps.Keys(values)) {
		v := values[k]
		ref, ok := parseSecretRef(v)
		if !ok {
			continue
		}
		if ref.namespace != namespace {
			return fmt.Errorf("%s: %s refers to namespace %s; a run may read Secrets of its own namespace %s only", k, v, ref.namespace, namespace)
		}
		s := secrets[ref.name]
		if s == nil {
			return fmt.Errorf("%s: %s: Secret %s/%s not found", k, v, namespace, ref.name)
		}
		resolved, err := ref.resolve(s)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", k, v, err)
		}
		values[k] = hide(resolved)
	}
	return nil
}

// resolve reads ref's value out of s.
func (ref secretRef) resolve(s *corev1.Secret) (string, error) {
	field, key, _ := strings.Cut(ref.path[0], ".")
	var value string
	switch field {
	case "data":
		b, ok := s.Data[key]
		if !ok {
			return "", fmt.Errorf("secret %s has no data key %q", s.Name, key)
		}
		value = string(b)
	case "stringData":
		v, ok := s.StringData[key]
		if !ok {
			return "", fmt.Errorf("secret %s has no stringData key %q", s.Name, key)
		}
		value = v
	default:
		return "", fmt.Errorf("%q: only data.<key> of a Secret can be referred to", ref.path[0])
	}
	for _, p := range ref.path[1:] {
		var doc any
		if err := json.Unmarshal([]byte(value), &doc); err != nil {
			return "", fmt.Errorf("%s of Secret %s is not JSON, so %q cannot be read from it", ref.path[0], s.Name, p)
		}
		v, err := jsonField(doc, p)
		if err != nil {
			return "", err
		}
		value = v
	}
	return value, nil
}

// jsonField reads a dotted path ("user.id", "hosts.0") out of a JSON
// document; a string comes back as it is, anything else as JSON.
func jsonField(doc any, path string) (string, error) {
	cur := doc
	for _, f := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[f]
			if !ok {
				return "", fmt.Errorf("no field %q in %q", f, path)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(f)
			if err != nil || i < 0 || i >= len(c) {
				return "", fmt.Errorf("no element %q in %q", f, path)
			}
			cur = c[i]
		default:
			return "", fmt.Errorf("no field %q in %q", f, path)
		}
	}
	if s, ok := cur.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(cur)
	return string(b), err
}

// SecretNames lists the Secrets of namespace that values refer to, so
// that the engine reads those and no other.
func SecretNames(namespace string, values ...string) []string {
	var names []string
	for _, v := range values {
		if ref, ok := parseSecretRef(v); ok && ref.namespace == namespace {
			names = append(names, ref.name)
		}
	}
	return names
}
