package cycloneimport

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// integrationTypeLabel marks the Secrets that hold Cyclone's
// integrations (SCM, DockerRegistry, Cluster, SonarQube, General), with
// the integration as JSON under the key "integration".
const integrationTypeLabel = "integration.cyclone.dev/type"

// needs reads the Secrets and ConfigMaps the tenant's objects refer to
// and makes what is applied by hand of them: a ConfigMap as it is, a
// Secret as a placeholder whose values are FillMe (kept whole only to
// be encrypted). Each lands in the namespace gyre reads it from.
func (r *reader) needs(ctx context.Context, t *tenant, n needs) error {
	src := namespace(t.name)
	for _, x := range n.sorted() {
		id := x.kind + "/" + x.name
		dst := src
		if x.worker {
			dst = workerNamespace(t.name)
		}
		gvr := secretsGVR
		if x.kind == "ConfigMap" {
			gvr = configMapsGVR
		}
		users := strings.Join(x.users, ", ")
		live, err := r.dyn.Resource(gvr).Namespace(src).Get(ctx, x.name, metav1.GetOptions{})
		unreadable := false
		switch {
		case apierrors.IsNotFound(err):
			t.note(id, ToDo, "not found in %s, though %s refers to it: create it in %s", src, users, dst)
			continue
		case apierrors.IsForbidden(err) && x.kind == "Secret":
			// Its keys are known from the references: enough for a
			// placeholder, which is all an import writes in clear.
			unreadable = true
			t.note(id, ToDo, "could not be read (forbidden): its placeholder has only the keys the references name, and no encrypted copy is made")
			live = &unstructured.Unstructured{}
			live.SetAPIVersion("v1")
			live.SetKind("Secret")
			live.SetName(x.name)
		case err != nil:
			return fmt.Errorf("tenant %s: %s %s/%s: %w", t.name, x.kind, src, x.name, err)
		}
		obj, _ := clean(live)
		obj.SetNamespace(dst)
		if x.kind == "ConfigMap" {
			t.byHand = append(t.byHand, obj)
			t.note(id, ToDo, "stage Pods read it in %s, which a tenant's repository does not reach: apply %s by hand", dst, byHandFile(obj))
			continue
		}
		if typ, _, _ := unstructured.NestedString(obj.Object, "type"); typ == string(corev1.SecretTypeServiceAccountToken) {
			t.note(id, LeftOut, "a ServiceAccount token, which the API server makes: not carried over (%s refers to it)", users)
			continue
		}
		keys := map[string]bool{}
		data, _, _ := unstructured.NestedMap(obj.Object, "data")
		for k := range data {
			keys[k] = true
		}
		for k := range x.keys {
			if !keys[k] && !x.webhook {
				t.note(id, ToDo, "has no key %s, though %s refers to it: the placeholder has it", k, users)
			}
			keys[k] = true
		}
		if x.webhook && data[webhookSecretKey] == nil && !unreadable {
			t.note(id, ToDo, "gyre checks SCM webhooks with the secret under key %s, which Cyclone's integrations lack: set it, and point the SCM's webhook at gyre's /webhooks/%s with the same secret", webhookSecretKey, src)
		}
		if !unreadable {
			t.secrets[byHandFile(obj)] = obj.DeepCopy()
		}
		placeholder := obj
		unstructured.RemoveNestedField(placeholder.Object, "data")
		fill := map[string]any{}
		for k := range keys {
			fill[k] = FillMe
		}
		placeholder.Object["stringData"] = fill
		t.byHand = append(t.byHand, placeholder)
		where := "the tenant namespace"
		if x.worker {
			where = "the worker namespace, where stage Pods run"
		}
		t.note(id, ToDo, "referred to by %s; it belongs in %s and its values never go to Git: fill in %s and apply it by hand", users, where, byHandFile(obj))
	}
	return nil
}

// integrations reports the tenant's Cyclone integrations no object refers
// to: gyre has no integrations, and says what stands in for each kind.
func (r *reader) integrations(ctx context.Context, t *tenant, n needs) error {
	ns := namespace(t.name)
	l, err := r.dyn.Resource(secretsGVR).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: integrationTypeLabel})
	if apierrors.IsForbidden(err) {
		t.note("", ToDo, "Secrets in %s could not be listed (forbidden): Cyclone integrations no object refers to were not looked for", ns)
		return nil
	}
	if err != nil {
		return fmt.Errorf("tenant %s: list integration Secrets in namespace %s: %w", t.name, ns, err)
	}
	for _, s := range l.Items {
		if n[fmt.Sprintf("Secret/%t/%s", false, s.GetName())] != nil {
			continue
		}
		typ := s.GetLabels()[integrationTypeLabel]
		instead := map[string]string{
			"Cluster":        "an ExecutionCluster, cluster-scoped and the platform team's, with this cluster's credential, named in the Tenant's spec.clusters",
			"SCM":            "a Secret named in the WorkflowTrigger's spec.scm.secret (key " + webhookSecretKey + "), and credentials a Git Resource reads with ${secrets...}",
			"DockerRegistry": "a docker-registry Secret in " + workerNamespace(t.name) + " named in the Project's spec.imagePullSecrets",
		}[typ]
		if instead == "" {
			instead = "a Secret that stages read with ${secrets." + ns + ":<name>/data.<key>}"
		}
		t.note("Secret/"+s.GetName(), LeftOut, "Cyclone %s integration, which no imported object refers to; gyre has no integrations: use %s", typ, instead)
	}
	return nil
}

// skipped are the kinds found in any namespace that the API server or
// the kubelet keep up by themselves.
var skipped = map[schema.GroupResource]bool{
	{Resource: "events"}:                                                   true,
	{Group: "events.k8s.io", Resource: "events"}:                           true,
	{Resource: "endpoints"}:                                                true,
	{Group: "discovery.k8s.io", Resource: "endpointslices"}:                true,
	{Group: "coordination.k8s.io", Resource: "leases"}:                     true,
	{Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews"}: true,
}

// others reports what else the tenant namespace holds: gyre imports the
// Cyclone kinds and what they refer to, and says so of the rest.
func (r *reader) others(ctx context.Context, t *tenant) error {
	ns := namespace(t.name)
	lists, err := r.disc.ServerPreferredNamespacedResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return fmt.Errorf("tenant %s: discover the kinds of namespace %s: %w", t.name, ns, err)
	}
	if err != nil {
		t.note("", ToDo, "some API groups could not be listed, so namespace %s may hold more than reported: %v", ns, err)
	}
	handled := map[string]bool{}
	for _, o := range t.byHand {
		handled[o.GetKind()+"/"+o.GetName()] = true
	}
	for _, n := range t.notes {
		handled[n.Object] = true
	}
	type found struct {
		kind  string
		names []string
	}
	var all []found
	var unlisted []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil || gv.Group == "cyclone.dev" {
			continue
		}
		for _, res := range l.APIResources {
			if strings.Contains(res.Name, "/") || !slices.Contains(res.Verbs, "list") || skipped[gv.WithResource(res.Name).GroupResource()] {
				continue
			}
			items, err := r.list(ctx, gv.WithResource(res.Name), ns, res.Kind+"s")
			if apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
				unlisted = append(unlisted, res.Kind)
				continue
			}
			if err != nil {
				return fmt.Errorf("tenant %s: list %s in namespace %s: %w", t.name, res.Name, ns, err)
			}
			var names []string
			for _, it := range items {
				id := res.Kind + "/" + it.GetName()
				if handled[id] || ordinary(it) {
					continue
				}
				names = append(names, it.GetName())
			}
			if len(names) > 0 {
				all = append(all, found{kind: res.Kind, names: names})
			}
		}
	}
	if len(unlisted) > 0 {
		sort.Strings(unlisted)
		t.note("", ToDo, "%d kinds could not be listed in %s (forbidden), so what else it holds is unknown: %s", len(unlisted), ns, list(unlisted, 5))
	}
	sort.Slice(all, func(i, j int) bool { return all[i].kind < all[j].kind })
	for _, f := range all {
		why := map[string]string{
			"PersistentVolumeClaim": "an import moves no data; gyre provisions the tenant's PVC " + cyclonePVC(t.name) + " in " + workerNamespace(t.name) + ", empty",
			"ResourceQuota":         "Cyclone's quota becomes the Tenant's spec.quota, from the namespace's tenant.cyclone.dev/info",
			"Pod":                   "Cyclone's stage and GC Pods belong to its runs",
		}[f.kind]
		if why == "" {
			why = "gyre imports Cyclone's kinds and the Secrets and ConfigMaps they refer to, and nothing else"
		}
		t.note("", LeftOut, "%d %s in %s (%s): %s", len(f.names), plural(f.kind, len(f.names)), ns, list(f.names, 5), why)
	}
	return nil
}

// ordinary is what every namespace has, made by Kubernetes itself.
func ordinary(o unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "ConfigMap":
		return o.GetName() == "kube-root-ca.crt"
	case "ServiceAccount":
		return o.GetName() == "default"
	case "Secret":
		typ, _, _ := unstructured.NestedString(o.Object, "type")
		return typ == string(corev1.SecretTypeServiceAccountToken)
	}
	return false
}

func plural(kind string, n int) string {
	if n == 1 {
		return kind
	}
	if strings.HasSuffix(kind, "s") {
		return kind + "es"
	}
	return kind + "s"
}

// list names at most max names, and how many more there are.
func list(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}
