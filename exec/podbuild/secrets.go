package podbuild

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// SecretEnvPrefix starts the name of the environment variable through
// which a container gets a resolved secret reference: "GYRE_SECRET_<n>".
// A command, an argument or an environment value that holds one refers
// to it as "$(GYRE_SECRET_<n>)", which the kubelet expands.
const SecretEnvPrefix = "GYRE_SECRET_"

// secretMarkerRe matches the stand-in that a resolved secret reference
// gets while a stage Pod is built. It holds NUL bytes, which no value
// read from YAML contains, so it can never be mistaken for the workload's
// own text.
var secretMarkerRe = regexp.MustCompile("\x00gyre-secret-([0-9]+)\x00")

// secretStash keeps the values of a stage attempt's resolved secret
// references out of its Pod: each value gets a stand-in, and goes into
// the attempt's run Secret instead.
type secretStash struct {
	values []string
}

// hide returns the stand-in of value; the same value gets the same one.
func (s *secretStash) hide(value string) string {
	n := slices.Index(s.values, value)
	if n < 0 {
		n = len(s.values)
		s.values = append(s.values, value)
	}
	return "\x00gyre-secret-" + strconv.Itoa(n) + "\x00"
}

func secretEnvName(n int) string { return SecretEnvPrefix + strconv.Itoa(n) }

// RunSecretName is the name of the Secret that holds the resolved secret
// references of the stage attempt that runs as pod.
func RunSecretName(pod string) string { return convention.ShortName(pod + "-secrets") }

// runSecret is the Secret of a stage attempt's resolved secret references,
// in the worker namespace beside its Pod; nil when the stage refers to no
// Secret. It carries the run's labels, by which cleanup deletes it.
func (s *secretStash) runSecret(run *cyclonev1alpha1.WorkflowRun, pod *corev1.Pod) *corev1.Secret {
	if len(s.values) == 0 {
		return nil
	}
	data := make(map[string][]byte, len(s.values))
	for n, v := range s.values {
		data[secretEnvName(n)] = []byte(v)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        RunSecretName(pod.Name),
			Namespace:   pod.Namespace,
			Labels:      map[string]string{convention.LabelManagedBy: convention.ManagedByExec, convention.LabelRunUID: string(run.UID)},
			Annotations: map[string]string{convention.AnnotationRun: run.Namespace + "/" + run.Name, convention.AnnotationStage: pod.Annotations[convention.AnnotationStage]},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
}

// reveal replaces the stand-ins in pod by references to the run Secret:
// an environment value that is one secret becomes a secretKeyRef; a
// command, an argument or an environment value that holds one gets
// "$(GYRE_SECRET_<n>)", and its container that variable, first in its
// environment so that later values can use it. A stand-in anywhere else,
// such as an image or a volume, is an error that names the field: the
// kubelet expands variables nowhere else.
func (s *secretStash) reveal(pod *corev1.Pod) error {
	if len(s.values) == 0 {
		return nil
	}
	secret := RunSecretName(pod.Name)
	ref := func(n int) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: secretEnvName(n)}}
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			ctr := &list[i]
			used := map[int]bool{}
			expand := func(v string) string {
				return secretMarkerRe.ReplaceAllStringFunc(v, func(m string) string {
					n, _ := strconv.Atoi(secretMarkerRe.FindStringSubmatch(m)[1])
					used[n] = true
					return "$(" + secretEnvName(n) + ")"
				})
			}
			for j := range ctr.Command {
				ctr.Command[j] = expand(ctr.Command[j])
			}
			for j := range ctr.Args {
				ctr.Args[j] = expand(ctr.Args[j])
			}
			for j := range ctr.Env {
				e := &ctr.Env[j]
				if m := secretMarkerRe.FindStringSubmatch(e.Value); m != nil && m[0] == e.Value {
					n, _ := strconv.Atoi(m[1])
					e.Value, e.ValueFrom = "", ref(n)
					continue
				}
				e.Value = expand(e.Value)
			}
			if len(used) == 0 {
				continue
			}
			vars := make([]corev1.EnvVar, 0, len(used))
			for n := range s.values {
				if used[n] {
					vars = append(vars, corev1.EnvVar{Name: secretEnvName(n), ValueFrom: ref(n)})
				}
			}
			ctr.Env = append(vars, ctr.Env...)
		}
	}
	return secretLeftIn(pod)
}

// secretLeftIn names the first field of pod that still holds a stand-in.
func secretLeftIn(pod *corev1.Pod) error {
	data, err := json.Marshal(pod)
	if err != nil {
		return err
	}
	// JSON writes the stand-in's NUL bytes as \u0000.
	if !strings.Contains(string(data), `\u0000gyre-secret-`) {
		return nil
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		return err
	}
	if field := markedField(tree, ""); field != "" {
		return Invalid("%s holds a secret reference; a resolved secret may only be used in a container's command, args or env", field)
	}
	return nil
}

func markedField(v any, at string) string {
	switch v := v.(type) {
	case string:
		if secretMarkerRe.MatchString(v) {
			return at
		}
	case []any:
		for i, e := range v {
			if f := markedField(e, fmt.Sprintf("%s[%d]", at, i)); f != "" {
				return f
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			next := k
			if at != "" {
				next = at + "." + k
			}
			if f := markedField(v[k], next); f != "" {
				return f
			}
			// A key of a map (an annotation's name) is a field too.
			if secretMarkerRe.MatchString(k) {
				return at
			}
		}
	}
	return ""
}
