package template

import (
	"crypto/rand"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

var (
	// randomRe and timenowRe match Cyclone's value generators, which make
	// up a whole variable value.
	randomRe  = regexp.MustCompile(`^\$\(random:(\d+)\)$`)
	timenowRe = regexp.MustCompile(`^\$\(timenow:(\w*)\)$`)
	// variableRe matches a variable reference anywhere in a value.
	variableRe = regexp.MustCompile(`\$\{variables\.([-\w.]+)\}`)
)

// timeLayouts are the named layouts "$(timenow:NAME)" accepts; any other
// name is used as a Go layout itself, as Cyclone does.
var timeLayouts = map[string]string{
	"ANSIC": time.ANSIC, "UnixDate": time.UnixDate, "RubyDate": time.RubyDate,
	"RFC822": time.RFC822, "RFC822Z": time.RFC822Z, "RFC850": time.RFC850,
	"RFC1123": time.RFC1123, "RFC1123Z": time.RFC1123Z, "RFC3339": time.RFC3339,
	"RFC3339Nano": time.RFC3339Nano, "Kitchen": time.Kitchen,
	"Stamp": time.Stamp, "StampMilli": time.StampMilli, "StampMicro": time.StampMicro, "StampNano": time.StampNano,
}

// ResolveVariables fixes a run's global variables: the Workflow's, with the
// run's values winning, each generator replaced by its value. random
// returns n random characters.
func ResolveVariables(workflow, run []cyclonev1alpha1.GlobalVariable, now time.Time, random func(n int) string) []cyclonev1alpha1.GlobalVariable {
	out := make([]cyclonev1alpha1.GlobalVariable, 0, len(workflow)+len(run))
	index := map[string]int{}
	for _, vars := range [][]cyclonev1alpha1.GlobalVariable{workflow, run} {
		for _, v := range vars {
			if i, ok := index[v.Name]; ok {
				out[i].Value = v.Value
				continue
			}
			index[v.Name] = len(out)
			out = append(out, v)
		}
	}
	for i := range out {
		out[i].Value = Generate(out[i].Value, now, random)
	}
	return out
}

// Generated reports whether value is a generator, "$(random:N)" or
// "$(timenow:FORMAT)", whose value ResolveVariables draws anew each time
// it is called.
func Generated(value string) bool {
	v := strings.TrimSpace(value)
	return randomRe.MatchString(v) || timenowRe.MatchString(v)
}

// Generate evaluates a "$(random:N)" or "$(timenow:FORMAT)" value and
// returns any other value unchanged.
func Generate(value string, now time.Time, random func(n int) string) string {
	v := strings.TrimSpace(value)
	if m := randomRe.FindStringSubmatch(v); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 256 {
			return value
		}
		return random(n)
	}
	if m := timenowRe.FindStringSubmatch(v); m != nil {
		if m[1] == "" {
			return strconv.FormatInt(now.Unix(), 10)
		}
		if layout, ok := timeLayouts[m[1]]; ok {
			return now.Format(layout)
		}
		return now.Format(m[1])
	}
	return value
}

// SubstituteVariables replaces every "${variables.NAME}" in s by the
// variable's value; references to unknown variables stay as they are, so
// the mistake shows in the Pod.
func SubstituteVariables(s string, vars map[string]string) string {
	if !strings.Contains(s, "${variables.") {
		return s
	}
	return variableRe.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := vars[variableRe.FindStringSubmatch(ref)[1]]; ok {
			return v
		}
		return ref
	})
}

// Parameters merges parameters: later lists override earlier ones by
// name, and variables are substituted into the final values. names keeps
// the order in which each name first appears.
func Parameters(vars map[string]string, lists ...[]cyclonev1alpha1.ParameterItem) (names []string, values map[string]string) {
	values = map[string]string{}
	for _, list := range lists {
		for _, p := range list {
			if p.Value == nil {
				continue
			}
			if _, ok := values[p.Name]; !ok {
				names = append(names, p.Name)
			}
			values[p.Name] = *p.Value
		}
	}
	for k, v := range values {
		values[k] = SubstituteVariables(v, vars)
	}
	return names, values
}

// VariableMap indexes resolved global variables by name.
func VariableMap(vars []cyclonev1alpha1.GlobalVariable) map[string]string {
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m
}

// randomAlphabet is what generated values are made of: usable in names
// and image tags.
const randomAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// RandomString returns n random lower-case letters and digits. A run's
// global variables draw from it once, when the run starts; the status
// keeps the values from then on.
func RandomString(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(randomAlphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = randomAlphabet[k.Int64()]
	}
	return string(b)
}
