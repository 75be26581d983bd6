package cycloneimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// Options say what to import and how to write it.
type Options struct {
	// Tenants to import, each from namespace cyclone-<tenant>.
	Tenants []string
	// Runs imports WorkflowRuns as well. They are history rather than
	// desired state: gyre starts each run it applies once more.
	Runs bool
	// RepoURL is the URL the Repository manifest names; a placeholder to
	// fill in when empty.
	RepoURL string
	// Repository names the Repository; DefaultRepository when empty.
	Repository string
	// PodSecurity is the Pod Security level of the Tenants, which the
	// import checks stages and runs at; baseline when empty.
	PodSecurity string
	// AgeRecipients, when given, get the referenced Secrets with their
	// values, encrypted to them; otherwise placeholders are written.
	AgeRecipients []age.Recipient
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// DefaultRepository is the name of the Repository an import writes.
const DefaultRepository = "pipelines"

// RepoURLPlaceholder stands for the Repository's URL until the user
// gives it. It matches the URL pattern of the CRD, so a forgotten
// placeholder is a failed fetch that names it, not a refused object.
const RepoURLPlaceholder = "https://git.example.com/FILL-ME/pipelines.git"

// FillMe replaces every Secret value in a placeholder Secret.
const FillMe = "FILL-ME"

// Action says what became of something the import could not carry over
// as it was.
type Action string

// Actions, in the order a report lists them.
const (
	// LeftOut is not in what gyre applies: an object moved to left-out/
	// or something not written at all.
	LeftOut Action = "left out"
	// Changed was carried over with a change.
	Changed Action = "changed"
	// ToDo was carried over, or stands in the repository, and needs the
	// user.
	ToDo Action = "to do"
)

func (a Action) rank() int { return slices.Index([]Action{LeftOut, Changed, ToDo}, a) }

// Note is one thing an import could not carry over as it was.
type Note struct {
	// Tenant the note is about.
	Tenant string `json:"tenant"`
	// Object is "Kind/name", or empty for the tenant as a whole.
	Object string `json:"object,omitempty"`
	// Action says what became of it.
	Action Action `json:"action"`
	// Message says what and why, and what to do.
	Message string `json:"message"`
}

// String is the note as a line of the report: "tenant t: Kind/name:
// message".
func (n Note) String() string {
	s := "tenant " + n.Tenant + ": "
	if n.Object != "" {
		s += n.Object + ": "
	}
	return s + n.Message
}

// Report is what an import wrote and what it could not carry over.
type Report struct {
	// Tenants are what was written for each tenant, in name order.
	Tenants []TenantReport `json:"tenants"`
	// Notes, by tenant, action, object and message.
	Notes []Note `json:"notes,omitempty"`
}

// TenantReport is what an import wrote for one tenant.
type TenantReport struct {
	// Tenant's name.
	Tenant string `json:"tenant"`
	// Objects written to tenants/<tenant>/base, per kind.
	Objects map[string]int `json:"objects"`
	// LeftOut are the objects moved to left-out/<tenant>, per kind.
	LeftOut map[string]int `json:"leftOut,omitempty"`
	// ByHand are the files under by-hand/ to apply by hand, relative to
	// the output directory.
	ByHand []string `json:"byHand,omitempty"`
}

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

// Import reads the Cyclone tenants o names from the cluster cfg reaches
// and writes the repository to dir, which must be empty or not exist.
func Import(ctx context.Context, cfg *rest.Config, dir string, o Options) (*Report, error) {
	if err := o.complete(); err != nil {
		return nil, err
	}
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	// An import makes a few dozen requests a tenant, one per kind of its
	// namespace: client-go's default of 5 a second would be most of its
	// time.
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS < 50 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	r := &reader{dyn: dyn, disc: disc, o: o}
	var tenants []*tenant
	for i, name := range o.Tenants {
		r.say("Reading tenant %s (%d of %d) from namespace %s", name, i+1, len(o.Tenants), namespace(name))
		t, err := r.tenant(ctx, name)
		if err != nil {
			return nil, err
		}
		tenants = append(tenants, t)
	}
	return writeAll(ctx, dir, tenants, o)
}

// writeAll writes the repository next to dir and renames it into place
// once whole, so that a failed or interrupted import leaves dir as it
// was, ready for the next attempt.
func writeAll(ctx context.Context, dir string, tenants []*tenant, o Options) (*Report, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+"-import-")
	if err != nil {
		return nil, err
	}
	rep, err := write(ctx, tmp, tenants, o)
	if err == nil {
		// The temporary directory is 0700; the repository is not secret.
		err = os.Chmod(tmp, 0o755)
	}
	if err == nil {
		// An empty dir makes way: os.Remove removes nothing else.
		if rm := os.Remove(dir); rm != nil && !errors.Is(rm, os.ErrNotExist) {
			err = rm
		}
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return rep, nil
}

// repoURLRe is the pattern the Repository CRD holds spec.url to.
var repoURLRe = regexp.MustCompile(`^((https?|ssh)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$`)

// complete checks the options and fills in defaults.
func (o *Options) complete() error {
	if len(o.Tenants) == 0 {
		return errors.New("no tenant to import: name one or more with --tenant")
	}
	for _, t := range o.Tenants {
		// The Tenant CRD's own rules: cyclone-<t>-worker must be a name.
		if errs := validation.IsDNS1123Label(t); len(errs) > 0 || len(t) > 48 || strings.HasSuffix(t, "-worker") {
			return fmt.Errorf("tenant %q: not a gyre tenant name (a DNS label of at most 48 characters, not ending in -worker)", t)
		}
	}
	o.Tenants = slices.Compact(slices.Sorted(slices.Values(o.Tenants)))
	if o.RepoURL != "" && !repoURLRe.MatchString(o.RepoURL) {
		return fmt.Errorf("repository URL %q: want https://, http://, ssh:// or user@host:path, as a Repository's spec.url", o.RepoURL)
	}
	if o.Repository != "" {
		if errs := validation.IsDNS1123Subdomain(o.Repository); len(errs) > 0 {
			return fmt.Errorf("repository name %q: %s", o.Repository, strings.Join(errs, "; "))
		}
	}
	if o.Repository == "" {
		o.Repository = DefaultRepository
	}
	if o.PodSecurity == "" {
		o.PodSecurity = podsecurity.DefaultLevel
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// emptyDir refuses a directory with anything in it: an import writes a
// whole repository and never merges into one.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: import writes a new repository; give it an empty or new directory", dir)
	}
	return nil
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

// ParseRecipient reads an age recipient as the age command line takes
// it: an X25519 key (age1...) or an SSH public key (ssh-ed25519 or
// ssh-rsa), so a team can encrypt to the keys it already has.
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "ssh-") {
		return agessh.ParseRecipient(s)
	}
	return age.ParseX25519Recipient(s)
}
