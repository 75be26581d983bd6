package ha

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
	"github.com/gyreops/gyre/internal/mgrconfig"
	"github.com/gyreops/gyre/internal/testcluster"
)

const (
	leaseNamespace = "gyre-system"
	leaseName      = "gyre-controller.gyre.dev"
	// Short leases, so that a killed leader is replaced in seconds.
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = time.Second
	// The time a takeover may take: the lease must run out, then the
	// next try of the standby, with a margin for a loaded machine.
	takeover = leaseDuration + retryPeriod + 10*time.Second
)

var (
	cluster *testcluster.Cluster
	k8s     client.Client
	// gyreBin is `gyre`, built once for the package.
	gyreBin string
)

func TestMain(m *testing.M) {
	os.Exit(testcluster.RunSuite(m, testcluster.Options{Scheduler: true, ControllerManager: true, Nodes: 1, PodsSucceedByDefault: true}, func(c *testcluster.Cluster) error {
		cluster = c
		scheme, err := mgrconfig.NewScheme()
		if err != nil {
			return err
		}
		if k8s, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
			return err
		}
		root, err := testcluster.RepoRoot()
		if err != nil {
			return err
		}
		gyreBin = filepath.Join(c.Dir(), "gyre")
		build := exec.Command("go", "build", "-o", gyreBin, "./cmd/gyre")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build gyre: %w\n%s", err, out)
		}
		return k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}})
	}))
}

// replica is one `gyre controller` process.
type replica struct {
	name    string
	cmd     *exec.Cmd
	log     *syncBuffer
	healthz string
	done    chan struct{}
}

// startReplica runs `gyre controller` with leader election on short
// leases; the test's end kills it.
func startReplica(t *testing.T, name string) *replica {
	t.Helper()
	r := &replica{name: name, log: &syncBuffer{}, healthz: freeAddr(t), done: make(chan struct{})}
	r.cmd = exec.Command(gyreBin, "controller",
		"--kubeconfig", cluster.Kubeconfig,
		"--leader-elect",
		"--leader-elect-namespace", leaseNamespace,
		"--leader-elect-lease-duration", leaseDuration.String(),
		"--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(),
		"--metrics-addr", "0",
		"--health-addr", r.healthz,
		"--webhook-addr", freeAddr(t),
		"--web-addr", "",
		"--log-dir", "",
		"--artifact-dir", t.TempDir(),
	)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("replica %s log:\n%s", r.name, lastLines(r.log.String(), 60))
		}
	})
	return r
}

// kill ends the replica with SIGKILL: it cannot release its lease.
func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// leads tells whether the replica has taken the lease.
func (r *replica) leads() bool {
	return strings.Contains(r.log.String(), "Successfully acquired lease")
}

// ready tells whether the replica's /readyz answers 200.
func (r *replica) ready() bool {
	resp, err := http.Get("http://" + r.healthz + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// tenantFiles is a tenant's directory in Git: objects ConfigMaps, whose
// content names the commit's generation.
func tenantFiles(objects int, generation string) map[string]string {
	var b strings.Builder
	var res strings.Builder
	res.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- objects.yaml\n")
	for i := range objects {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: object-%03d\ndata:\n  generation: %q\n", i, generation)
	}
	return map[string]string{"kustomization.yaml": res.String(), "objects.yaml": b.String()}
}

func TestHA_aKilledLeaderIsReplacedAndEveryTenantConverges(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ctx := context.Background()
	const tenants, objects = 8, 30

	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "tenants.git")
	write := func(generation string) string {
		for i := range tenants {
			for path, content := range tenantFiles(objects, generation) {
				repo.WriteFile(fmt.Sprintf("tenants/ha-%d/%s", i, path), content)
			}
		}
		rev := repo.Commit(generation)
		repo.Push()
		return rev
	}
	rev := write("one")
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(srv.Close)

	replicas := []*replica{startReplica(t, "a"), startReplica(t, "b")}
	leader := func(g Gomega) *replica {
		var leaders []*replica
		for _, r := range replicas {
			if r.leads() {
				leaders = append(leaders, r)
			}
		}
		g.Expect(leaders).To(HaveLen(1), "one live replica leads")
		return leaders[0]
	}
	var first *replica
	g.Eventually(func(g Gomega) { first = leader(g) }).WithTimeout(takeover).Should(Succeed())

	repoObj := &gyrev1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "ha"}, Spec: gyrev1alpha1.RepositorySpec{
		URL:      srv.URL + "/tenants.git",
		Interval: &metav1.Duration{Duration: 2 * time.Second},
	}}
	g.Expect(k8s.Create(ctx, repoObj)).To(Succeed())
	for i := range tenants {
		g.Expect(k8s.Create(ctx, &gyrev1alpha1.Tenant{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ha-%d", i)},
			Spec:       gyrev1alpha1.TenantSpec{RepositoryRef: gyrev1alpha1.ObjectReference{Name: repoObj.Name}},
		})).To(Succeed())
	}

	// Every replica is ready, the standby too: it serves webhooks.
	g.Eventually(func(g Gomega) {
		for _, r := range replicas {
			g.Expect(r.ready()).To(BeTrue(), "replica %s is ready", r.name)
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Three kills: the first lands mid-convergence of the first
	// revision, the others mid-convergence of a new one each.
	generation := "one"
	for kill, next := range []string{"", "two", "three"} {
		if next != "" {
			generation = next
			rev = write(next)
		}
		// Kill as soon as the leader has started applying.
		applied := 0
		g.Eventually(func(g Gomega) {
			cms := &corev1.ConfigMapList{}
			g.Expect(k8s.List(ctx, cms)).To(Succeed())
			applied = 0
			for _, cm := range cms.Items {
				if strings.HasPrefix(cm.Namespace, convention.Namespace("ha-")) && cm.Data["generation"] == generation {
					applied++
				}
			}
			g.Expect(applied).To(BeNumerically(">", 0), "the leader has applied an object of generation %s", generation)
		}).WithTimeout(time.Minute).WithPolling(20 * time.Millisecond).Should(Succeed())
		before := &coordinationv1.Lease{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, before)).To(Succeed())
		killed := time.Now()
		first.kill()
		replicas = remove(replicas, first)
		// A new replica stands by for the next kill.
		replicas = append(replicas, startReplica(t, fmt.Sprintf("r%d", kill)))

		g.Eventually(func(g Gomega) {
			lease := &coordinationv1.Lease{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, lease)).To(Succeed())
			g.Expect(*lease.Spec.HolderIdentity).NotTo(Equal(*before.Spec.HolderIdentity), "another replica holds the lease")
			g.Expect(*lease.Spec.LeaseTransitions).To(Equal(*before.Spec.LeaseTransitions + 1))
			first = leader(g)
		}).WithTimeout(takeover).WithPolling(50 * time.Millisecond).Should(Succeed())
		t.Logf("kill %d, with %d of %d objects of generation %s applied: replica %s took over %s after the leader was killed",
			kill+1, applied, tenants*objects, generation, first.name, time.Since(killed).Round(100*time.Millisecond))

		expectConverged(t, tenants, objects, rev, generation)
	}
}

// expectConverged waits until every Tenant is Ready at rev with a full
// inventory, and checks that its namespace holds exactly the objects of
// Git with Git's content: nothing half-applied, nothing left over.
func expectConverged(t *testing.T, tenants, objects int, rev, generation string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Eventually(func(g Gomega) {
		for i := range tenants {
			name := fmt.Sprintf("ha-%d", i)
			got := &gyrev1alpha1.Tenant{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, got)).To(Succeed())
			g.Expect(got.Status.LastAppliedRevision).To(HaveSuffix(rev), "tenant %s", name)
			g.Expect(got.Status.Objects).To(Equal(objects), "tenant %s", name)
			ready := false
			for _, c := range got.Status.Conditions {
				if c.Type == "Ready" {
					ready = c.Status == metav1.ConditionTrue
				}
			}
			g.Expect(ready).To(BeTrue(), "tenant %s: %v", name, got.Status.Conditions)
		}
	}).WithTimeout(90 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	for i := range tenants {
		ns := convention.Namespace(fmt.Sprintf("ha-%d", i))
		cms := &corev1.ConfigMapList{}
		g.Expect(k8s.List(ctx, cms, client.InNamespace(ns))).To(Succeed())
		got := map[string]string{}
		for _, cm := range cms.Items {
			if cm.Name != "kube-root-ca.crt" {
				got[cm.Name] = cm.Data["generation"]
			}
		}
		want := map[string]string{}
		for j := range objects {
			want[fmt.Sprintf("object-%03d", j)] = generation
		}
		g.Expect(got).To(Equal(want), "namespace %s holds Git's objects, each with Git's content", ns)
	}
}

func remove(rs []*replica, r *replica) []*replica {
	var out []*replica
	for _, x := range rs {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a log that a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
