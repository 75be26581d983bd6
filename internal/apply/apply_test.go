package apply_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gyreops/gyre/internal/apply"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

var (
	scheme  = runtime.NewScheme()
	control *testcluster.Cluster
)

// owner is the field manager the tests apply as.
var owner = ssa.Owner{Field: convention.FieldManager, Group: convention.FieldManagerGroup}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	os.Exit(testcluster.RunSuite(m, testcluster.Options{}, func(c *testcluster.Cluster) error {
		control = c
		return nil
	}))
}

// requestLog records the requests a client sends.
type requestLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []string
}

func (l *requestLog) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	entry := req.Method + " " + req.URL.Path
	if req.URL.Query().Get("dryRun") != "" {
		entry += " (dry run)"
	}
	l.log = append(l.log, entry)
	l.mu.Unlock()
	return l.next.RoundTrip(req)
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.log
	l.log = nil
	return out
}

func configMap(name, value string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace("apply-test")
	u.SetName(name)
	u.SetLabels(map[string]string{convention.TenantLabel: "apply"})
	_ = unstructured.SetNestedField(u.Object, value, "data", "key")
	return u
}

func wanted(cms ...*unstructured.Unstructured) []*unstructured.Unstructured {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName("apply-test")
	ns.SetLabels(map[string]string{convention.TenantLabel: "apply"})
	return append([]*unstructured.Unstructured{ns}, cms...)
}

func actions(cs *ssa.ChangeSet) map[string]ssa.Action {
	out := map[string]ssa.Action{}
	for _, e := range cs.Entries {
		out[e.Subject] = e.Action
	}
	return out
}

func TestApplier(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	reqs := &requestLog{}
	cfg := rest.CopyConfig(control.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { reqs.next = rt; return reqs })
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	// The cache gyre's tenant reconciler keeps: metadata of what carries
	// the tenant label.
	managed, err := labels.NewRequirement(convention.TenantLabel, selection.Exists, nil)
	g.Expect(err).NotTo(HaveOccurred())
	live, err := cache.New(control.Config, cache.Options{Scheme: scheme, DefaultLabelSelector: labels.NewSelector().Add(*managed)})
	g.Expect(err).NotTo(HaveOccurred())
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = live.Start(cctx) }()
	g.Expect(live.WaitForCacheSync(cctx)).To(BeTrue())
	// The caller's rule: a WorkflowRun starts work, so it goes last.
	isRun := func(o *unstructured.Unstructured) bool { return o.GetKind() == "WorkflowRun" }
	a := &apply.Applier{Client: c, Live: live, Owner: owner, CreateLast: isRun}

	// inCache waits until the cache shows the digest of every object.
	inCache := func(g *WithT, objs []*unstructured.Unstructured) {
		g.Eventually(func(g Gomega) {
			for _, o := range objs {
				want := o.DeepCopy()
				g.Expect(apply.Stamp(want)).To(Succeed())
				m := &metav1.PartialObjectMetadata{}
				m.SetGroupVersionKind(o.GroupVersionKind())
				g.Expect(live.Get(ctx, client.ObjectKeyFromObject(o), m)).To(Succeed())
				g.Expect(m.Annotations).To(HaveKeyWithValue(convention.DigestAnnotation, want.GetAnnotations()[convention.DigestAnnotation]))
			}
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	getData := func(g Gomega, name string) map[string]string {
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "apply-test", Name: name}, cm)).To(Succeed())
		return cm.Data
	}

	t.Run("New objects are created with one request each, namespace first.", func(t *testing.T) {
		g := NewWithT(t)
		reqs.take()
		cs, err := a.Apply(ctx, wanted(configMap("one", "1"), configMap("two", "2")))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(actions(cs)).To(Equal(map[string]ssa.Action{
			"Namespace/apply-test":     ssa.CreatedAction,
			"ConfigMap/apply-test/one": ssa.CreatedAction,
			"ConfigMap/apply-test/two": ssa.CreatedAction,
		}))
		var patches []string
		for _, r := range reqs.take() {
			g.Expect(r).NotTo(And(HavePrefix("GET"), ContainSubstring("/namespaces/")), "no object is read")
			if !strings.HasPrefix(r, "GET") {
				patches = append(patches, r)
			}
		}
		g.Expect(patches).To(HaveLen(3), "one apply per object: %v", patches)
		g.Expect(patches[0]).To(Equal("PATCH /api/v1/namespaces/apply-test"))
		g.Expect(getData(g, "one")).To(HaveKeyWithValue("key", "1"))
	})

	t.Run("A new object is created from the JSON its caller holds for it.", func(t *testing.T) {
		g := NewWithT(t)
		o := configMap("held", "as the object says")
		g.Expect(apply.Stamp(o)).To(Succeed())
		held := o.DeepCopy()
		g.Expect(unstructured.SetNestedField(held.Object, "as the JSON says", "data", "key")).To(Succeed())
		body, err := held.MarshalJSON()
		g.Expect(err).NotTo(HaveOccurred())
		withHeld := *a
		withHeld.Encoded = func(u *unstructured.Unstructured) []byte {
			if u == o {
				return body
			}
			return nil
		}
		cs, err := withHeld.Apply(ctx, wanted(o))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(actions(cs)).To(HaveKeyWithValue("ConfigMap/apply-test/held", ssa.CreatedAction))
		g.Expect(getData(g, "held")).To(HaveKeyWithValue("key", "as the JSON says"))
		g.Expect(c.Delete(ctx, o)).To(Succeed())
	})

	t.Run("Applying the same objects again sends no request at all.", func(t *testing.T) {
		g := NewWithT(t)
		objs := wanted(configMap("one", "1"), configMap("two", "2"))
		inCache(g, objs)
		reqs.take()
		cs, err := a.Apply(ctx, objs)
		g.Expect(err).NotTo(HaveOccurred())
		for subject, action := range actions(cs) {
			g.Expect(action).To(Equal(ssa.UnchangedAction), subject)
		}
		g.Expect(reqs.take()).To(BeEmpty())
	})

	t.Run("An object edited by someone else is put back; the others are not touched.", func(t *testing.T) {
		g := NewWithT(t)
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "apply-test", Name: "two"}, cm)).To(Succeed())
		cm.Data["key"] = "edited"
		g.Expect(c.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
		g.Eventually(func(g Gomega) {
			m := &metav1.PartialObjectMetadata{}
			m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
			g.Expect(live.Get(ctx, client.ObjectKey{Namespace: "apply-test", Name: "two"}, m)).To(Succeed())
			g.Expect(apply.LastWriteIsOurs(m.ManagedFields, owner.Field)).To(BeFalse())
		}).WithTimeout(10 * time.Second).Should(Succeed())
		reqs.take()
		cs, err := a.Apply(ctx, wanted(configMap("one", "1"), configMap("two", "2")))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(actions(cs)).To(HaveKeyWithValue("ConfigMap/apply-test/two", ssa.ConfiguredAction))
		g.Expect(actions(cs)).To(HaveKeyWithValue("ConfigMap/apply-test/one", ssa.UnchangedAction))
		var writes []string
		for _, r := range reqs.take() {
			if !strings.HasPrefix(r, "GET") && !strings.HasSuffix(r, "(dry run)") {
				writes = append(writes, r)
			}
		}
		g.Expect(writes).To(Equal([]string{"PATCH /api/v1/namespaces/apply-test/configmaps/two"}))
		g.Expect(getData(g, "two")).To(HaveKeyWithValue("key", "2"))
	})

	t.Run("A batch the API server rejects leaves the cluster as it was.", func(t *testing.T) {
		g := NewWithT(t)
		bad := configMap("Not_A_Valid_Name", "x")
		news := []*unstructured.Unstructured{configMap("one", "changed")}
		for _, name := range []string{"three", "four", "five", "six"} {
			news = append(news, configMap(name, name))
		}
		reqs.take()
		_, err := a.Apply(ctx, wanted(append(news, bad)...))
		g.Expect(err).To(MatchError(ContainSubstring("ConfigMap/apply-test/Not_A_Valid_Name")))
		g.Expect(getData(g, "one")).To(HaveKeyWithValue("key", "1"), "the changed object is not written")
		for _, o := range news[1:] {
			err = c.Get(ctx, client.ObjectKeyFromObject(o), &corev1.ConfigMap{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the new object %s is not left behind", o.GetName())
		}
		for _, r := range reqs.take() {
			g.Expect(r).NotTo(HavePrefix("PATCH /api/v1/namespaces/apply-test/configmaps/one"), "the existing object is not even diffed")
		}
	})

	t.Run("An object the caller creates last is created only once everything else of its batch was accepted.", func(t *testing.T) {
		g := NewWithT(t)
		run := &unstructured.Unstructured{}
		run.SetAPIVersion("cyclone.dev/v1alpha1")
		run.SetKind("WorkflowRun")
		run.SetNamespace("apply-test")
		run.SetName("run")
		run.SetLabels(map[string]string{convention.TenantLabel: "apply"})
		_ = unstructured.SetNestedField(run.Object, "wf", "spec", "workflowRef", "name")
		reqs.take()
		_, err := a.Apply(ctx, wanted(configMap("one", "1"), run, configMap("Not_A_Valid_Name", "x")))
		g.Expect(err).To(HaveOccurred())
		for _, r := range reqs.take() {
			g.Expect(r).NotTo(ContainSubstring("/workflowruns/"), "the run is neither validated nor created")
		}
		cs, err := a.Apply(ctx, wanted(configMap("one", "1"), run))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(actions(cs)).To(HaveKeyWithValue("WorkflowRun/apply-test/run", ssa.CreatedAction))
		var writes []string
		for _, r := range reqs.take() {
			if strings.Contains(r, "/workflowruns/") {
				writes = append(writes, r)
			}
		}
		g.Expect(writes).To(Equal([]string{
			"PATCH /apis/cyclone.dev/v1alpha1/namespaces/apply-test/workflowruns/run (dry run)",
			"PATCH /apis/cyclone.dev/v1alpha1/namespaces/apply-test/workflowruns/run",
		}))
	})
}

func TestApplier_dryRunAgreesWithApply(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	c, err := client.New(control.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	a := &apply.Applier{Client: c, Owner: owner}
	cm := func(value string) *unstructured.Unstructured {
		o := configMap("settings", value)
		o.SetNamespace("dryrun-test")
		return o
	}
	ns := wanted()[0]
	ns.SetName("dryrun-test")

	live, dry, err := a.DryRun(ctx, cm("1"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(live).To(BeNil(), "nothing is live before the first apply")
	g.Expect(dry.Object["data"]).To(Equal(map[string]any{"key": "1"}))

	_, err = a.Apply(ctx, []*unstructured.Unstructured{ns, cm("1")})
	g.Expect(err).NotTo(HaveOccurred())
	live, dry, err = a.DryRun(ctx, cm("1"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dry.GetResourceVersion()).To(Equal(live.GetResourceVersion()), "a dry run of what was applied changes nothing")
	g.Expect(dry.GetManagedFields()).To(Equal(live.GetManagedFields()))

	live, dry, err = a.DryRun(ctx, cm("2"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(live.Object["data"]).To(Equal(map[string]any{"key": "1"}))
	g.Expect(dry.Object["data"]).To(Equal(map[string]any{"key": "2"}))
}
