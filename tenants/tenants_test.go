package tenants_test

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
	"github.com/gyreops/gyre/tenants"
)

var (
	control, far *testcluster.Cluster
	scheme       = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cyclonev1alpha1.AddToScheme, gyrev1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// The control cluster is the suite's; the execution cluster, far, is
	// a second one, stopped after the last test.
	code := testcluster.RunSuite(m, testcluster.Options{ControllerManager: true}, func(c *testcluster.Cluster) (err error) {
		control = c
		far, err = testcluster.Start(context.Background(), testcluster.Options{ControllerManager: true})
		return err
	})
	if far != nil {
		_ = far.Stop()
	}
	os.Exit(code)
}

func newClient(g Gomega, c *testcluster.Cluster) client.Client {
	cl, err := client.New(c.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	return cl
}

// registerCluster stores far's kubeconfig in a Secret on the control
// cluster and an ExecutionCluster pointing to it.
func registerCluster(ctx context.Context, g Gomega, c client.Client, name string, kubeconfig []byte) *corev1.Secret {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "creds-"}}
	g.Expect(c.Create(ctx, ns)).To(Succeed())
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeconfig", Namespace: ns.Name},
		Data:       map[string][]byte{"value": kubeconfig},
	}
	g.Expect(c.Create(ctx, secret)).To(Succeed())
	g.Expect(c.Create(ctx, &cyclonev1alpha1.ExecutionCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: cyclonev1alpha1.ExecutionClusterSpec{SecretRef: &cyclonev1alpha1.SecretKeyReference{
			Name: secret.Name, Namespace: secret.Namespace,
		}},
	})).To(Succeed())
	return secret
}

func TestProvision_twoClusters(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	cc, fc := newClient(g, control), newClient(g, far)
	kubeconfig, err := os.ReadFile(far.Kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	registerCluster(ctx, g, cc, "far", kubeconfig)
	cs := &tenants.Clients{Control: cc, Reader: cc}

	tenant := &gyrev1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "acme"},
		Spec: gyrev1alpha1.TenantSpec{
			Clusters: []gyrev1alpha1.TenantCluster{
				{Name: "local"},
				{Name: "remote", ExecutionClusterRef: &gyrev1alpha1.ObjectReference{Name: "far"}},
			},
			Quota:   corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")},
			Storage: &gyrev1alpha1.TenantStorage{Size: resource.MustParse("1Gi")},
			// The worker gets a Role only when the Tenant asks for one.
			WorkerAccess: []gyrev1alpha1.WorkerAccess{gyrev1alpha1.WorkerAccessPatchPods},
		},
	}
	res, err := tenants.Provision(ctx, cs, nil, tenant)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Written).To(HaveLen(1 + 2*7))

	g.Expect(cc.Get(ctx, client.ObjectKey{Name: "cyclone-acme"}, &corev1.Namespace{})).To(Succeed())
	for _, c := range []client.Client{cc, fc} {
		ns := "cyclone-acme-worker"
		q := &corev1.ResourceQuota{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: tenants.QuotaName}, q)).To(Succeed())
		g.Expect(q.Spec.Hard.Pods().String()).To(Equal("10"))
		g.Expect(q.Labels).To(HaveKeyWithValue(convention.TenantLabel, "acme"))
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cyclone-pvc-acme"}, &corev1.PersistentVolumeClaim{})).To(Succeed())
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: convention.WorkerServiceAccount}, &corev1.ServiceAccount{})).To(Succeed())
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: convention.WorkerServiceAccount}, &rbacv1.RoleBinding{})).To(Succeed())
		expectWorkerNetworkPolicy(ctx, g, c, ns)
		// Granted PatchPods, stage Pods may patch the Pods of their own
		// namespace, and touch no Pod of another namespace.
		for podNS, allowed := range map[string]bool{ns: true, "cyclone-other-worker": false} {
			review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               "system:serviceaccount:" + ns + ":" + convention.WorkerServiceAccount,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: podNS, Verb: "patch", Resource: "pods"},
			}}
			g.Expect(c.Create(ctx, review)).To(Succeed())
			g.Expect(review.Status.Allowed).To(Equal(allowed), "patch pods in %s", podNS)
		}
	}

	t.Run("A second provision of an unchanged tenant writes nothing.", func(t *testing.T) {
		g := NewWithT(t)
		res, err := tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Written).To(BeEmpty())
	})

	t.Run("A changed quota and a deleted Role on the execution cluster are repaired.", func(t *testing.T) {
		g := NewWithT(t)
		q := &corev1.ResourceQuota{}
		g.Expect(fc.Get(ctx, client.ObjectKey{Namespace: "cyclone-acme-worker", Name: tenants.QuotaName}, q)).To(Succeed())
		q.Spec.Hard[corev1.ResourcePods] = resource.MustParse("99")
		g.Expect(fc.Update(ctx, q)).To(Succeed())
		g.Expect(fc.Delete(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-acme-worker", Name: convention.WorkerServiceAccount}})).To(Succeed())
		// Someone opens the worker namespace to every other namespace.
		np := &networkingv1.NetworkPolicy{}
		g.Expect(fc.Get(ctx, client.ObjectKey{Namespace: "cyclone-acme-worker", Name: convention.WorkerServiceAccount}, np)).To(Succeed())
		np.Spec.Ingress[0].From[0] = networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}
		g.Expect(fc.Update(ctx, np)).To(Succeed())

		res, err := tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Written).To(ConsistOf(
			"far: ResourceQuota/cyclone-acme-worker/cyclone-quota",
			"far: Role/cyclone-acme-worker/cyclone-worker",
			"far: NetworkPolicy/cyclone-acme-worker/cyclone-worker",
		))
		expectWorkerNetworkPolicy(ctx, g, fc, "cyclone-acme-worker")
		g.Expect(fc.Get(ctx, client.ObjectKeyFromObject(q), q)).To(Succeed())
		g.Expect(q.Spec.Hard.Pods().String()).To(Equal("10"))
	})

	t.Run("Dropping the quota from the spec removes the ResourceQuota.", func(t *testing.T) {
		g := NewWithT(t)
		t2 := tenant.DeepCopy()
		t2.Spec.Quota = nil
		_, err := tenants.Provision(ctx, cs, nil, t2)
		g.Expect(err).NotTo(HaveOccurred())
		err = fc.Get(ctx, client.ObjectKey{Namespace: "cyclone-acme-worker", Name: tenants.QuotaName}, &corev1.ResourceQuota{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		_, err = tenants.Provision(ctx, cs, nil, tenant)
		g.Expect(err).NotTo(HaveOccurred())
	})

	t.Run("Remove deletes the namespaces on both clusters.", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(tenants.Remove(ctx, cs, tenant)).To(Succeed())
		// The test control plane runs no pvc-protection controller, so
		// the test lifts the PVC's finalizer the way it would.
		g.Eventually(func(g Gomega) {
			for _, c := range []client.Client{cc, fc} {
				pvc := &corev1.PersistentVolumeClaim{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: "cyclone-acme-worker", Name: "cyclone-pvc-acme"}, pvc); err == nil && len(pvc.Finalizers) > 0 {
					pvc.Finalizers = nil
					g.Expect(c.Update(ctx, pvc)).To(Succeed())
				}
				err := c.Get(ctx, client.ObjectKey{Name: "cyclone-acme-worker"}, &corev1.Namespace{})
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
			}
		}, time.Minute, time.Second).Should(Succeed())
		for _, c := range []client.Client{cc, fc} {
			err := c.Get(ctx, client.ObjectKey{Name: "cyclone-acme-worker"}, &corev1.Namespace{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}
	})
}

func TestClients_refreshesWhenTheSecretChanges(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	cc := newClient(g, control)
	kubeconfig, err := os.ReadFile(far.Kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	secret := registerCluster(ctx, g, cc, "rotating", kubeconfig)
	cs := &tenants.Clients{Control: cc, Reader: cc}

	first, err := cs.Get(ctx, "rotating")
	g.Expect(err).NotTo(HaveOccurred())
	again, err := cs.Get(ctx, "rotating")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(first), "an unchanged Secret reuses the client")

	secret.Data["value"] = append(append([]byte{}, kubeconfig...), '\n')
	g.Expect(cc.Update(ctx, secret)).To(Succeed())
	rotated, err := cs.Get(ctx, "rotating")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rotated).NotTo(BeIdenticalTo(first), "a changed Secret makes a new client")
	g.Expect(rotated.List(ctx, &corev1.NamespaceList{})).To(Succeed())

	_, err = cs.Get(ctx, "missing")
	g.Expect(err).To(MatchError(tenants.ErrClusterNotFound))
}

// TestProvision_newTenantReadsOnlyItsNamespaces: a tenant that has
// nothing yet costs the API server two reads, of its namespaces, found
// missing, besides its writes: nothing can be in a namespace that does
// not exist, and at hundreds of tenants those reads add up. Once it is
// provisioned, everything is read again, so that an object planted since
// is still refused (TestProvision_adoption).
func TestProvision_newTenantReadsOnlyItsNamespaces(t *testing.T) {
	testcluster.Require(t)
	ctx := context.Background()
	g := NewWithT(t)
	var mu sync.Mutex
	var reads []string
	cfg := rest.CopyConfig(control.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && !discovery.MatchString(r.URL.Path) {
				mu.Lock()
				reads = append(reads, r.URL.Path)
				mu.Unlock()
			}
			return rt.RoundTrip(r)
		})
	})
	cc, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	tenant := controlTenant("fresh")
	removeAfter(t, cc, tenant.Name)

	// The reconciler's cache of what gyre labelled has nothing of a new
	// tenant.
	_, err = tenants.Provision(ctx, &tenants.Clients{Control: cc, Reader: cc}, emptyCache{}, tenant)
	g.Expect(err).NotTo(HaveOccurred())
	slices.Sort(reads)
	g.Expect(reads).To(Equal([]string{"/api/v1/namespaces/cyclone-fresh", "/api/v1/namespaces/cyclone-fresh-worker"}))
	sa := &corev1.ServiceAccount{}
	g.Expect(cc.Get(ctx, client.ObjectKey{Namespace: "cyclone-fresh-worker", Name: convention.WorkerServiceAccount}, sa)).To(Succeed())
	g.Expect(sa.Labels).To(HaveKeyWithValue(convention.TenantLabel, "fresh"))

	reads = nil
	_, err = tenants.Provision(ctx, &tenants.Clients{Control: cc, Reader: cc}, emptyCache{}, tenant)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reads).To(ContainElement("/api/v1/namespaces/cyclone-fresh-worker/serviceaccounts/"+convention.WorkerServiceAccount),
		"a provisioned tenant's objects are read again")
}

// discovery matches the paths of API discovery.
var discovery = regexp.MustCompile(`^/api(/v1)?$|^/apis(/[^/]+(/[^/]+)?)?$`)

// emptyCache is a cache of objects' metadata that holds nothing.
type emptyCache struct{}

func (emptyCache) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
}

func (emptyCache) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// expectWorkerNetworkPolicy checks what the worker namespace's
// NetworkPolicy lets through: from outside, only Pods of the namespace
// itself; to outside, everything but the cloud metadata services.
func expectWorkerNetworkPolicy(ctx context.Context, g Gomega, c client.Client, ns string) {
	np := &networkingv1.NetworkPolicy{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: convention.WorkerServiceAccount}, np)).To(Succeed())
	g.Expect(np.Labels).To(HaveKeyWithValue(convention.TenantLabel, "acme"))
	g.Expect(np.Spec.PodSelector.MatchLabels).To(BeEmpty(), "every Pod of %s", ns)
	g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
	g.Expect(np.Spec.Ingress).To(HaveLen(1))
	g.Expect(np.Spec.Ingress[0].From).To(ConsistOf(networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{}}),
		"only Pods of the same namespace reach stage Pods")
	var blocks []networkingv1.IPBlock
	for _, rule := range np.Spec.Egress {
		g.Expect(rule.Ports).To(BeEmpty(), "every port")
		for _, peer := range rule.To {
			if peer.IPBlock != nil {
				blocks = append(blocks, *peer.IPBlock)
			}
		}
	}
	g.Expect(blocks).To(ConsistOf(
		networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"169.254.169.254/32"}},
		networkingv1.IPBlock{CIDR: "::/0", Except: []string{"fd00:ec2::254/128"}},
	), "everywhere but the metadata services")
}
