package cycloneimport

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// need is a Secret or ConfigMap the Cyclone objects refer to. It does not
// go into the tenant's directory: a Secret's values must not, and what a
// stage Pod mounts lives in the worker namespace, which a tenant's
// repository does not reach.
type need struct {
	kind, name string
	// worker is true for what stage Pods use (volumes, environment, image
	// pull secrets): it belongs in cyclone-<tenant>-worker. Otherwise it
	// is read in cyclone-<tenant>, as secret references and SCM triggers
	// are.
	worker bool
	// keys the references name.
	keys map[string]bool
	// users are the objects and fields that refer to it.
	users []string
	// webhook is set for an SCM trigger's Secret, whose key webhookSecret
	// gyre reads.
	webhook bool
}

// needs are a tenant's needs by kind, namespace role and name.
type needs map[string]*need

func (n needs) add(kind, name string, worker bool, user string, keys ...string) *need {
	id := fmt.Sprintf("%s/%t/%s", kind, worker, name)
	x := n[id]
	if x == nil {
		x = &need{kind: kind, name: name, worker: worker, keys: map[string]bool{}}
		n[id] = x
	}
	for _, k := range keys {
		if k != "" {
			x.keys[k] = true
		}
	}
	if !slices.Contains(x.users, user) {
		x.users = append(x.users, user)
	}
	return x
}

// sorted returns the needs in a stable order: kind, namespace, name.
func (n needs) sorted() []*need {
	out := make([]*need, 0, len(n))
	for _, x := range n {
		sort.Strings(x.users)
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.worker != b.worker {
			return !a.worker
		}
		return a.name < b.name
	})
	return out
}

// secretRefRe matches Cyclone's secret reference, as gyre's engine reads
// it: "${secrets.<namespace>:<secret>/data.<key>[/<json path>]}".
var secretRefRe = regexp.MustCompile(`^\$\{secrets\.([a-z0-9][-a-z0-9.]*):([a-z0-9][-a-z0-9.]*)/([^}]+)\}$`)

// scan finds what the objects of tenant t refer to outside themselves. It
// returns the Secrets and ConfigMaps to carry over, and notes for what
// gyre does not carry over or does differently.
func scan(t string, objs []*unstructured.Unstructured) (needs, []Note, error) {
	n := needs{}
	var notes []Note
	note := func(o *unstructured.Unstructured, format string, args ...any) {
		notes = append(notes, Note{Tenant: t, Object: objectID(o), Action: ToDo, Message: fmt.Sprintf(format, args...)})
	}
	for _, o := range objs {
		id := objectID(o)
		walkStrings(o.Object["spec"], "spec", func(field, s string) {
			m := secretRefRe.FindStringSubmatch(strings.TrimSpace(s))
			if m == nil {
				return
			}
			ns, name, path := m[1], m[2], m[3]
			if ns != namespace(t) {
				note(o, "%s refers to Secret %s/%s; a run reads Secrets of its own namespace %s only: copy it there and change the reference", field, ns, name, namespace(t))
				return
			}
			field0, key, _ := strings.Cut(strings.Split(path, "/")[0], ".")
			if field0 != "data" && field0 != "stringData" {
				key = ""
			}
			n.add("Secret", name, false, id+" "+field, key)
		})
		var err error
		switch o.GetKind() {
		case "Project":
			var p cyclonev1alpha1.Project
			if err = fromUnstructured(o, &p); err == nil {
				for _, s := range p.Spec.ImagePullSecrets {
					n.add("Secret", s.Name, true, id+" spec.imagePullSecrets")
				}
				for _, in := range p.Spec.Integrations {
					note(o, "spec.integrations names Cyclone integration %s (%s); gyre has no integrations and ignores it", in.Name, in.Type)
				}
			}
		case "Resource":
			var r cyclonev1alpha1.Resource
			if err = fromUnstructured(o, &r); err == nil {
				if b := r.Spec.IntegrationBind; b != nil {
					note(o, "spec.bind takes parameters from a Cyclone %s integration; gyre has no integrations: give those parameters values", b.IntegrationType)
				}
				if p := r.Spec.Persistent; p != nil && p.PVC != "" {
					note(o, "spec.persistent.pvc: PVC %s is data, not carried over: create it in %s on every cluster the tenant runs on", p.PVC, workerNamespace(t))
				}
			}
		case "Stage":
			var s cyclonev1alpha1.Stage
			if err = fromUnstructured(o, &s); err == nil && s.Spec.Pod != nil {
				podNeeds(n, id+" spec.pod.spec", &s.Spec.Pod.Spec)
			}
		case "WorkflowTrigger":
			var wt cyclonev1alpha1.WorkflowTrigger
			if err = fromUnstructured(o, &wt); err == nil {
				if s := wt.Spec.SCM.Secret; s != "" && wt.Spec.Type == cyclonev1alpha1.TriggerTypeSCM {
					n.add("Secret", s, false, id+" spec.scm.secret", webhookSecretKey).webhook = true
				}
				presetNeeds(n, id, wt.Spec.PresetVolumes)
			}
		case "WorkflowRun":
			var r cyclonev1alpha1.WorkflowRun
			if err = fromUnstructured(o, &r); err == nil {
				presetNeeds(n, id, r.Spec.PresetVolumes)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("namespace %s: %s: %w", namespace(t), id, err)
		}
	}
	return n, notes, nil
}

// webhookSecretKey is the key of an SCM trigger's Secret that gyre reads
// its webhook secret from.
const webhookSecretKey = "webhookSecret"

// podNeeds adds the Secrets and ConfigMaps a stage's Pod spec uses.
// Names a template fills in ("{{ arg }}") are not objects yet.
func podNeeds(n needs, user string, spec *corev1.PodSpec) {
	add := func(kind, name, field string, keys ...string) {
		if name != "" && !strings.Contains(name, "{{") {
			n.add(kind, name, true, user+"."+field, keys...)
		}
	}
	for _, s := range spec.ImagePullSecrets {
		add("Secret", s.Name, "imagePullSecrets")
	}
	for _, v := range spec.Volumes {
		if s := v.Secret; s != nil {
			add("Secret", s.SecretName, "volumes", itemKeys(s.Items)...)
		}
		if c := v.ConfigMap; c != nil {
			add("ConfigMap", c.Name, "volumes", itemKeys(c.Items)...)
		}
		if p := v.Projected; p != nil {
			for _, src := range p.Sources {
				if s := src.Secret; s != nil {
					add("Secret", s.Name, "volumes", itemKeys(s.Items)...)
				}
				if c := src.ConfigMap; c != nil {
					add("ConfigMap", c.Name, "volumes", itemKeys(c.Items)...)
				}
			}
		}
	}
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range containers {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add("Secret", r.Name, "env", r.Key)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add("ConfigMap", r.Name, "env", r.Key)
			}
		}
		for _, e := range c.EnvFrom {
			if r := e.SecretRef; r != nil {
				add("Secret", r.Name, "envFrom")
			}
			if r := e.ConfigMapRef; r != nil {
				add("ConfigMap", r.Name, "envFrom")
			}
		}
	}
}

func itemKeys(items []corev1.KeyToPath) []string {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
}

// presetNeeds adds the Secrets and ConfigMaps a run's preset volumes
// mount into every stage Pod.
func presetNeeds(n needs, user string, vols []cyclonev1alpha1.PresetVolume) {
	for i, v := range vols {
		if v.ObjectName == nil || *v.ObjectName == "" {
			continue
		}
		field := fmt.Sprintf("%s spec.volumes[%d]", user, i)
		switch v.Type {
		case cyclonev1alpha1.PresetVolumeTypeSecret:
			n.add("Secret", *v.ObjectName, true, field, v.Path)
		case cyclonev1alpha1.PresetVolumeTypeConfigMap:
			n.add("ConfigMap", *v.ObjectName, true, field, v.Path)
		}
	}
}

// walkStrings calls fn with every string under v and its field path.
func walkStrings(v any, field string, fn func(field, s string)) {
	switch v := v.(type) {
	case string:
		fn(field, v)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walkStrings(v[k], field+"."+k, fn)
		}
	case []any:
		for i, e := range v {
			walkStrings(e, fmt.Sprintf("%s[%d]", field, i), fn)
		}
	}
}

func fromUnstructured(o *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into)
}

// objectID names an object as gyre's messages do: Kind/name.
func objectID(o *unstructured.Unstructured) string { return o.GetKind() + "/" + o.GetName() }

// namespace is tenant t's namespace, where its Cyclone objects live, in
// Cyclone as in gyre.
func namespace(t string) string { return convention.Namespace(t) }

// cyclonePVC is the PVC tenant t's stages share, in Cyclone as in gyre.
func cyclonePVC(t string) string { return convention.PVCName(t) }

// workerNamespace is where gyre runs tenant t's stage Pods. Cyclone ran
// them in cyclone-<t> itself, on whichever cluster.
func workerNamespace(t string) string { return convention.WorkerNamespace(t) }
