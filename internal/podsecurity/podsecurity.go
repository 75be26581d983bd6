// Package podsecurity checks Pods against the Kubernetes Pod Security
// Standards with the upstream implementation, the one the API server's
// PodSecurity admission runs, so gyre refuses exactly what the API server
// would refuse, and says so before anything is applied.
package podsecurity

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// The levels of the Pod Security Standards.
const (
	Privileged = string(psaapi.LevelPrivileged)
	Baseline   = string(psaapi.LevelBaseline)
	Restricted = string(psaapi.LevelRestricted)
)

// DefaultLevel is the level of a Tenant that names none.
const DefaultLevel = Baseline

// evaluator holds the upstream checks; building it once is what the
// admission plugin does too.
var evaluator = func() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(fmt.Sprintf("pod security checks: %v", err)) // the upstream list is valid by construction
	}
	return e
}()

// Violation is one rule of a level that a Pod breaks.
type Violation struct {
	// Rule is the upstream check's short reason, such as
	// "privileged" or "hostPath volumes".
	Rule string
	// Detail names what breaks it, such as the containers or volumes.
	Detail string
}

func (v Violation) String() string {
	if v.Detail == "" {
		return v.Rule
	}
	return v.Rule + " (" + v.Detail + ")"
}

// ParseLevel returns the level s names; empty means DefaultLevel.
func ParseLevel(s string) (string, error) {
	if s == "" {
		return DefaultLevel, nil
	}
	l, err := psaapi.ParseLevel(s)
	if err != nil {
		return "", fmt.Errorf("pod security level %q: must be restricted, baseline or privileged", s)
	}
	return string(l), nil
}

// Check returns the rules of level that a Pod with this metadata and spec
// breaks, in the upstream checks' order; none when it may run. An unknown
// level is checked as restricted, the safe side.
func Check(level string, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []Violation {
	l, err := psaapi.ParseLevel(level)
	if err != nil {
		l = psaapi.LevelRestricted
	}
	if meta == nil {
		meta = &metav1.ObjectMeta{}
	}
	var out []Violation
	for _, r := range evaluator.EvaluatePod(psaapi.LevelVersion{Level: l, Version: psaapi.LatestVersion()}, meta, spec) {
		if !r.Allowed {
			out = append(out, Violation{Rule: r.ForbiddenReason, Detail: r.ForbiddenDetail})
		}
	}
	return out
}

// Error joins violations into one message, as the API server words its
// refusal: `violates PodSecurity "baseline": privileged (container "x"
// must not set securityContext.privileged=true), ...`.
func Error(level string, vs []Violation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return fmt.Sprintf("violates PodSecurity %q: %s", level, strings.Join(parts, ", "))
}

// NamespaceLabels are the labels that make the API server enforce, warn
// about and audit level in a namespace, at the latest version of the
// standards.
func NamespaceLabels(level string) map[string]string {
	return map[string]string{
		psaapi.EnforceLevelLabel:   level,
		psaapi.EnforceVersionLabel: psaapi.VersionLatest,
		psaapi.WarnLevelLabel:      level,
		psaapi.WarnVersionLabel:    psaapi.VersionLatest,
		psaapi.AuditLevelLabel:     level,
		psaapi.AuditVersionLabel:   psaapi.VersionLatest,
	}
}

// Allows reports whether level allows everything other allows: restricted
// allows less than baseline, which allows less than privileged.
func Allows(level, other string) bool {
	return rank(level) >= rank(other)
}

// rank orders the levels; an unknown one ranks with restricted.
func rank(level string) int {
	switch level {
	case Privileged:
		return 2
	case Baseline:
		return 1
	}
	return 0
}
