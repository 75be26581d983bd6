package cycloneimport

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

// cycloneKinds are the kinds an import reads from a tenant namespace, in
// the order Cyclone's objects refer to each other.
var cycloneKinds = []struct{ kind, resource string }{
	{"Project", "projects"},
	{"Resource", "resources"},
	{"Stage", "stages"},
	{"Workflow", "workflows"},
	{"WorkflowTrigger", "workflowtriggers"},
	{"WorkflowRun", "workflowruns"},
}

func cycloneGVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "cyclone.dev", Version: "v1alpha1", Resource: resource}
}

var (
	namespacesGVR = corev1.SchemeGroupVersion.WithResource("namespaces")
	secretsGVR    = corev1.SchemeGroupVersion.WithResource("secrets")
	configMapsGVR = corev1.SchemeGroupVersion.WithResource("configmaps")
)

// tenant is what an import read and made of one Cyclone tenant.
type tenant struct {
	name string
	// objects go to tenants/<name>/base; leftOut to left-out/<name>.
	objects, leftOut []*unstructured.Unstructured
	// byHand are the Secrets and ConfigMaps to apply by hand, with their
	// namespace set; secret values stay in secrets, by file name, only
	// to be encrypted.
	byHand  []*unstructured.Unstructured
	secrets map[string]*unstructured.Unstructured
	spec    gyrev1alpha1.TenantSpec
	notes   []Note
}

func (t *tenant) note(obj string, a Action, format string, args ...any) {
	t.notes = append(t.notes, Note{Tenant: t.name, Object: obj, Action: a, Message: fmt.Sprintf(format, args...)})
}

// reader reads Cyclone tenants from a cluster.
type reader struct {
	dyn  dynamic.Interface
	disc discovery.DiscoveryInterface
	o    Options
}

func (r *reader) say(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, format+"\n", args...)
}

// pageSize bounds one list request, so a tenant with thousands of runs
// is read in steps that each report progress.
const pageSize = 500

// tenant reads one tenant: its namespace, its Cyclone objects, what they
// refer to, and what else its namespace holds.
func (r *reader) tenant(ctx context.Context, name string) (*tenant, error) {
	t := &tenant{name: name, secrets: map[string]*unstructured.Unstructured{}}
	ns := namespace(name)
	nsObj, err := r.dyn.Resource(namespacesGVR).Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("tenant %s: namespace %s not found: Cyclone keeps tenant %s's objects there", name, ns, name)
	case apierrors.IsForbidden(err):
		t.spec = r.tenantSpec(t, nil)
		t.note("", ToDo, "namespace %s could not be read (forbidden): the Tenant gets gyre's defaults, not Cyclone's quota and PVC", ns)
	case err != nil:
		return nil, fmt.Errorf("tenant %s: namespace %s: %w", name, ns, err)
	default:
		t.spec = r.tenantSpec(t, nsObj)
	}

	for _, k := range cycloneKinds {
		if k.kind == "WorkflowRun" && !r.o.Runs {
			n, err := r.count(ctx, cycloneGVR(k.resource), ns)
			if err != nil {
				return nil, fmt.Errorf("tenant %s: list WorkflowRuns in namespace %s: %w", name, ns, err)
			}
			if n > 0 {
				t.note("", LeftOut, "%d %s run history, not desired state, and not imported (--runs imports them, and gyre then starts each once more)", n, map[bool]string{true: "WorkflowRun is", false: "WorkflowRuns are"}[n == 1])
			}
			continue
		}
		items, err := r.list(ctx, cycloneGVR(k.resource), ns, k.kind+"s")
		if err != nil {
			return nil, fmt.Errorf("tenant %s: list %ss in namespace %s: %w", name, k.kind, ns, err)
		}
		for i := range items {
			obj, dropped := clean(&items[i])
			for _, d := range dropped {
				t.note(objectID(obj), Changed, "%s", d)
			}
			workerContext(t, obj)
			t.objects = append(t.objects, obj)
		}
		if k.kind == "WorkflowRun" && len(items) > 0 {
			t.note("", ToDo, "%d %s read, as --runs asked: gyre starts each one it applies once more, and never again", len(items), plural("WorkflowRun", len(items)))
		}
		r.say("  %-16s %d", k.kind+"s", len(items))
	}

	n, notes, err := scan(name, t.objects)
	if err != nil {
		return nil, err
	}
	t.notes = append(t.notes, notes...)
	if err := r.needs(ctx, t, n); err != nil {
		return nil, err
	}
	if err := r.integrations(ctx, t, n); err != nil {
		return nil, err
	}
	if err := r.others(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// count returns how many objects of gvr namespace ns holds, reading one.
func (r *reader) count(ctx context.Context, gvr schema.GroupVersionResource, ns string) (int64, error) {
	l, err := r.dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, err
	}
	n := int64(len(l.Items))
	if rest := l.GetRemainingItemCount(); rest != nil {
		n += *rest
	}
	return n, nil
}

// list reads every object of gvr in ns, a page at a time, reporting
// progress when it takes more than one page.
func (r *reader) list(ctx context.Context, gvr schema.GroupVersionResource, ns, what string) ([]unstructured.Unstructured, error) {
	var items []unstructured.Unstructured
	opts := metav1.ListOptions{Limit: pageSize}
	for {
		l, err := r.dyn.Resource(gvr).Namespace(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		items = append(items, l.Items...)
		if l.GetContinue() == "" {
			break
		}
		total := ""
		if rest := l.GetRemainingItemCount(); rest != nil {
			total = fmt.Sprintf(" of %d", int64(len(items))+*rest)
		}
		r.say("  %s: %d%s read", what, len(items), total)
		opts.Continue = l.GetContinue()
	}
	sort.Slice(items, func(i, j int) bool { return items[i].GetName() < items[j].GetName() })
	return items, nil
}

// controlClusterName is the name Cyclone gives the cluster it runs on in
// an execution context.
const controlClusterName = "cyclone-control-cluster"

// workerContext translates a run's execution context from Cyclone's
// conventions to gyre's, which render insists on: Cyclone's worker
// namespace was the tenant namespace itself, and its name for the
// control cluster is gyre's empty cluster. Another cluster is an
// ExecutionCluster, which is cluster-scoped and stays the platform
// team's.
func workerContext(t *tenant, obj *unstructured.Unstructured) {
	if k := obj.GetKind(); k != "WorkflowRun" && k != "WorkflowTrigger" {
		return
	}
	id := objectID(obj)
	ns, _, _ := unstructured.NestedString(obj.Object, "spec", "executionContext", "namespace")
	if ns == namespace(t.name) {
		_ = unstructured.SetNestedField(obj.Object, workerNamespace(t.name), "spec", "executionContext", "namespace")
		t.note(id, Changed, "spec.executionContext.namespace: %s, where Cyclone ran the tenant's stages, is %s under gyre", ns, workerNamespace(t.name))
	}
	switch cluster, _, _ := unstructured.NestedString(obj.Object, "spec", "executionContext", "cluster"); cluster {
	case "":
	case controlClusterName:
		unstructured.RemoveNestedField(obj.Object, "spec", "executionContext", "cluster")
		t.note(id, Changed, "spec.executionContext.cluster: %s, Cyclone's name for the cluster it runs on, is left empty: gyre's control cluster", cluster)
	default:
		t.note(id, ToDo, "spec.executionContext.cluster names ExecutionCluster %s, which is cluster-scoped and not imported: the platform team creates it and lists it in Tenant %s's spec.clusters", cluster, t.name)
	}
}

// cycloneTenantInfo is what Cyclone keeps of a tenant in its namespace's
// tenant.cyclone.dev/info annotation.
type cycloneTenantInfo struct {
	PersistentVolumeClaim struct {
		StorageClass string `json:"storageClass"`
		Size         string `json:"size"`
	} `json:"persistentVolumeClaim"`
	ResourceQuota map[corev1.ResourceName]string `json:"resourceQuota"`
}

// tenantSpec makes the gyre Tenant's spec from what Cyclone recorded of
// the tenant: its quota and its PVC.
func (r *reader) tenantSpec(t *tenant, nsObj *unstructured.Unstructured) gyrev1alpha1.TenantSpec {
	spec := gyrev1alpha1.TenantSpec{
		RepositoryRef: gyrev1alpha1.ObjectReference{Name: r.o.Repository},
		PodSecurity:   r.o.PodSecurity,
	}
	if nsObj == nil {
		return spec
	}
	raw, ok := nsObj.GetAnnotations()["tenant.cyclone.dev/info"]
	if !ok {
		t.note("", ToDo, "namespace %s has no tenant.cyclone.dev/info annotation: the Tenant gets gyre's defaults (no quota, a 10Gi PVC)", nsObj.GetName())
		return spec
	}
	var info cycloneTenantInfo
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		t.note("", ToDo, "namespace %s: annotation tenant.cyclone.dev/info is not Cyclone's tenant JSON (%v): the Tenant gets gyre's defaults", nsObj.GetName(), err)
		return spec
	}
	for _, k := range sortedKeys(info.ResourceQuota) {
		q, err := resource.ParseQuantity(info.ResourceQuota[k])
		if err != nil {
			t.note("", LeftOut, "quota %s: %q is not a quantity", k, info.ResourceQuota[k])
			continue
		}
		if spec.Quota == nil {
			spec.Quota = corev1.ResourceList{}
		}
		spec.Quota[k] = q
	}
	if pvc := info.PersistentVolumeClaim; pvc.Size != "" {
		q, err := resource.ParseQuantity(pvc.Size)
		if err != nil {
			t.note("", LeftOut, "PVC size %q is not a quantity: the Tenant's PVC gets gyre's 10Gi", pvc.Size)
		} else {
			spec.Storage = &gyrev1alpha1.TenantStorage{Size: q}
			if pvc.StorageClass != "" {
				spec.Storage.StorageClassName = &pvc.StorageClass
			}
		}
	}
	return spec
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
