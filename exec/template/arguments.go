package template

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// argumentRe matches a stage argument placeholder, mustache's
// "{{ name }}" or its unescaped "{{{ name }}}".
var argumentRe = regexp.MustCompile(`\{\{\{\s*([-\w.]+)\s*\}\}\}|\{\{\s*([-\w.]+)\s*\}\}`)

// SubstituteArguments replaces every "{{ NAME }}" and "{{{ NAME }}}" in s
// by the argument's value, leaving unknown names as they are.
func SubstituteArguments(s string, args map[string]string) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	return argumentRe.ReplaceAllStringFunc(s, func(ref string) string {
		m := argumentRe.FindStringSubmatch(ref)
		if v, ok := args[m[1]+m[2]]; ok {
			return v
		}
		return ref
	})
}

// Arguments are a stage's argument values: its defaults, overridden by
// the run's stage parameters, with variables substituted.
//
// As in Cyclone, an argument may be a generator ("$(random:N)",
// "$(timenow:FORMAT)") and may use the other arguments. A generator draws
// from seed, not from the clock or a random source, so that the same
// attempt always gets the same Pod. resolve sees the values before the
// arguments fill each other in: it replaces secret references.
func Arguments(defaults []cyclonev1alpha1.ArgumentValue, runParams []cyclonev1alpha1.ParameterConfig, stage string, vars map[string]string, seed Seed, resolve func(map[string]string) error) (map[string]string, error) {
	base := make([]cyclonev1alpha1.ParameterItem, len(defaults))
	for i, a := range defaults {
		base[i] = cyclonev1alpha1.ParameterItem(a)
	}
	var override []cyclonev1alpha1.ParameterItem
	for _, p := range runParams {
		if p.Name == stage {
			override = p.Parameters
		}
	}
	_, values := Parameters(vars, base, override)
	for k, v := range values {
		values[k] = Generate(v, seed.now, seed.random(k))
	}
	if err := resolve(values); err != nil {
		return nil, err
	}
	rendered := make(map[string]string, len(values))
	for k, v := range values {
		rendered[k] = SubstituteArguments(v, values)
	}
	return rendered, nil
}

// Seed is what the generated arguments of one stage attempt are drawn
// from.
type Seed struct {
	now  time.Time
	key  string
	next func(key string, n int) string
}

func (a Seed) random(arg string) func(int) string {
	return func(n int) string { return a.next(a.key+"/"+arg, n) }
}

// AttemptSeed draws an attempt's generated arguments from the run's
// creation time and from a hash of the run's UID, the stage, the attempt
// and the argument: the same attempt gets the same values, each attempt
// its own.
func AttemptSeed(run *cyclonev1alpha1.WorkflowRun, stage string, attempt int32) Seed {
	return Seed{now: run.CreationTimestamp.Time, key: fmt.Sprintf("%s/%s/%d", run.UID, stage, attempt), next: hashString}
}

// hashString is n characters of randomAlphabet drawn from the SHA-256 of
// key: random-looking, and the same for the same key.
func hashString(key string, n int) string {
	out := make([]byte, 0, n)
	for block := 0; len(out) < n; block++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", key, block)))
		for _, b := range sum {
			if len(out) == n {
				break
			}
			out = append(out, randomAlphabet[int(b)%len(randomAlphabet)])
		}
	}
	return string(out)
}

// Workload fills the "{{ argument }}" and "{{{ argument }}}" placeholders
// in every string of a Stage's workload, as Cyclone renders the Stage with
// mustache. Unlike mustache, gyre never HTML-escapes a value, and leaves
// an unknown name as it is, so that the mistake shows.
func Workload(wl *cyclonev1alpha1.PodWorkload, args map[string]string) (*cyclonev1alpha1.PodWorkload, error) {
	out := wl.DeepCopy()
	if len(args) == 0 {
		return out, nil
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		return nil, err
	}
	tree = renderStrings(tree, args)
	if data, err = json.Marshal(tree); err != nil {
		return nil, err
	}
	out = &cyclonev1alpha1.PodWorkload{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("the workload with its arguments filled in: %w", err)
	}
	return out, nil
}

func renderStrings(v any, args map[string]string) any {
	switch v := v.(type) {
	case string:
		return SubstituteArguments(v, args)
	case []any:
		for i := range v {
			v[i] = renderStrings(v[i], args)
		}
	case map[string]any:
		for k := range v {
			v[k] = renderStrings(v[k], args)
		}
	}
	return v
}
