// Package scheduling keeps a tenant's Pods on the nodes its Tenant gives
// it. The Pod Security Standards leave placement alone, yet placement is
// how one tenant reaches another's nodes: a toleration lets a Pod onto a
// node tainted for someone else, and so does a RuntimeClass that brings
// one; spec.nodeName skips the scheduler and every taint; a high priority
// class preempts other tenants' Pods.
// Render and the engine both check with this package, so a Stage in Git
// and a run made through the API meet the same rules.
package scheduling

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

// Violation is one part of a Pod spec that its Tenant's scheduling does
// not allow.
type Violation struct {
	// Field is the path of the part within the Pod spec, such as
	// "tolerations[1]" or "nodeSelector.pool".
	Field string
	// Message says what is wrong and what would allow it.
	Message string
}

func (v Violation) String() string { return v.Field + ": " + v.Message }

// Of returns the rules of Tenant t: its spec.scheduling, or the zero
// value, which allows no toleration, priority class or runtime class.
func Of(t *gyrev1alpha1.Tenant) *gyrev1alpha1.TenantScheduling {
	if t.Spec.Scheduling == nil {
		return &gyrev1alpha1.TenantScheduling{}
	}
	return t.Spec.Scheduling
}

// Check returns what in spec breaks the rules of a Tenant whose
// spec.scheduling is rules; a Tenant without it has the zero value. A nil
// rules stands for a Tenant that is not known, as in a review of Git
// alone, and checks only what no Tenant allows.
func Check(rules *gyrev1alpha1.TenantScheduling, spec *corev1.PodSpec) []Violation {
	var out []Violation
	if spec.NodeName != "" {
		out = append(out, Violation{"nodeName", fmt.Sprintf("%q: a tenant's Pod may not name its node, which skips the scheduler and the node's taints; select nodes with nodeSelector or affinity", spec.NodeName)})
	}
	if rules == nil {
		return out
	}
	for _, k := range slices.Sorted(maps.Keys(rules.NodeSelector)) {
		if v, ok := spec.NodeSelector[k]; ok && v != rules.NodeSelector[k] {
			out = append(out, Violation{"nodeSelector." + k, fmt.Sprintf("%q: the Tenant's spec.scheduling.nodeSelector keeps its Pods on %s=%s", v, k, rules.NodeSelector[k])})
		}
	}
	allowed := append(slices.Clip(rules.Tolerations), alwaysAllowed...)
	for i, t := range spec.Tolerations {
		if !slices.ContainsFunc(allowed, func(a corev1.Toleration) bool { return covers(a, t) }) {
			out = append(out, Violation{fmt.Sprintf("tolerations[%d]", i), fmt.Sprintf("toleration %s is not among the Tenant's spec.scheduling.tolerations (%s)", describe(t), describeAll(rules.Tolerations))})
		}
	}
	if pc := spec.PriorityClassName; pc != "" && !slices.Contains(rules.PriorityClassNames, pc) {
		out = append(out, Violation{"priorityClassName", fmt.Sprintf("%q is not among the Tenant's spec.scheduling.priorityClassNames (%s)", pc, names(rules.PriorityClassNames))})
	}
	// A RuntimeClass's own tolerations and node selector are added to the
	// Pod by the API server, after every check here.
	if rc := spec.RuntimeClassName; rc != nil && !slices.Contains(rules.RuntimeClassNames, *rc) {
		out = append(out, Violation{"runtimeClassName", fmt.Sprintf("%q is not among the Tenant's spec.scheduling.runtimeClassNames (%s)", *rc, names(rules.RuntimeClassNames))})
	}
	return out
}

func names(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// alwaysAllowed are the tolerations the API server gives every Pod, for
// 300 s: a Pod that stays longer on a node that is not ready or
// unreachable harms only itself.
var alwaysAllowed = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
}

// Apply gives spec the Tenant's node selector and tolerations, once each:
// every Pod of the tenant carries them, whatever its Stage says. Check
// first: Apply overwrites a conflicting selector value.
func Apply(rules *gyrev1alpha1.TenantScheduling, spec *corev1.PodSpec) {
	if rules == nil {
		return
	}
	if len(rules.NodeSelector) > 0 {
		if spec.NodeSelector == nil {
			spec.NodeSelector = map[string]string{}
		}
		maps.Copy(spec.NodeSelector, rules.NodeSelector)
	}
	for _, t := range rules.Tolerations {
		if !slices.ContainsFunc(spec.Tolerations, func(have corev1.Toleration) bool { return equal(have, t) }) {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
}

// Error joins violations into one message, the way both render and the
// engine report them.
func Error(vs []Violation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return "breaks the Tenant's scheduling: " + strings.Join(parts, "; ")
}

// covers reports whether allowing a also allows t: t tolerates no taint
// that a does not.
func covers(a, t corev1.Toleration) bool {
	if a.Effect != "" && a.Effect != t.Effect {
		return false
	}
	switch {
	case a.Operator == corev1.TolerationOpExists && a.Key == "":
		// tolerates every taint of its effect
	case a.Key != t.Key:
		return false
	case a.Operator == corev1.TolerationOpExists:
		// every value of the key
	case t.Operator == corev1.TolerationOpExists || a.Value != t.Value:
		return false
	}
	// A NoExecute toleration with seconds is evicted after them; one
	// without stays for good.
	if a.TolerationSeconds != nil {
		return t.TolerationSeconds != nil && *t.TolerationSeconds <= *a.TolerationSeconds
	}
	return true
}

func equal(a, b corev1.Toleration) bool {
	return a.Key == b.Key && opOf(a) == opOf(b) && a.Value == b.Value && a.Effect == b.Effect &&
		(a.TolerationSeconds == nil) == (b.TolerationSeconds == nil) &&
		(a.TolerationSeconds == nil || *a.TolerationSeconds == *b.TolerationSeconds)
}

// opOf is a toleration's operator, Equal when empty, as the API defaults it.
func opOf(t corev1.Toleration) corev1.TolerationOperator {
	if t.Operator == "" {
		return corev1.TolerationOpEqual
	}
	return t.Operator
}

// describe writes a toleration the way taints are written:
// key=value:Effect, key:Effect for Exists, :Effect for every key.
func describe(t corev1.Toleration) string {
	s := t.Key
	if opOf(t) == corev1.TolerationOpEqual {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + string(t.Effect)
	}
	if s == "" {
		s = "every taint"
	}
	if t.TolerationSeconds != nil {
		s += " for " + strconv.FormatInt(*t.TolerationSeconds, 10) + "s"
	}
	return strconv.Quote(s)
}

func describeAll(ts []corev1.Toleration) string {
	if len(ts) == 0 {
		return "none"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = describe(t)
	}
	return strings.Join(parts, ", ")
}
