package exec

import (
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

// TestEngine_runOnAnExecutionCluster runs a workflow on a second cluster,
// reached through an ExecutionCluster's kubeconfig Secret: the stage Pods
// and the GC Pod live there, the status on the control cluster.
func TestEngine_runOnAnExecutionCluster(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	remote, err := testcluster.Start(bg, testcluster.Options{Scheduler: true, ControllerManager: true, Nodes: 1})
	g.Expect(err).NotTo(HaveOccurred())
	defer remote.Stop()
	remoteClient, err := client.NewWithWatch(remote.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	ns := newTenant(t, remoteClient)
	worker := "cyclone-" + Tenant(ns) + "-worker"
	remoteRec := recordPods(t, remoteClient, worker)
	localRec := recordPods(t, k8s, worker)

	kubeconfig, err := os.ReadFile(remote.Kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "remote-kubeconfig", Namespace: ns},
		Data: map[string][]byte{"value": kubeconfig}}
	g.Expect(k8s.Create(bg, secret)).To(Succeed())
	ec := &cyclonev1alpha1.ExecutionCluster{ObjectMeta: metav1.ObjectMeta{Name: "remote-" + Tenant(ns)},
		Spec: cyclonev1alpha1.ExecutionClusterSpec{SecretRef: &cyclonev1alpha1.SecretKeyReference{Name: secret.Name, Namespace: ns}}}
	g.Expect(k8s.Create(bg, ec)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(bg, ec) })
	updateTenant(t, ns, onClusters(ec.Name, "nowhere"))

	limited := rest.CopyConfig(env.Config)
	limited.QPS, limited.Burst = 77, 177 // as `gyre controller --kube-api-qps 77 --kube-api-burst 177`
	e, _ := startEngine(t, limited, testConfig())
	diamond(t, ns, nil)
	createRun(t, ns, "run1", "diamond", func(r *cyclonev1alpha1.WorkflowRun) {
		r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{Cluster: ec.Name}
	})

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(run.Status.Cleaned).To(BeTrue())
	g.Expect(phaseOf(run)).To(HaveEach(cyclonev1alpha1.StatusSucceeded))
	checkDependencyOrder(g, remoteRec.all(), map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"d"}})
	g.Eventually(remoteRec.all).WithTimeout(10 * time.Second).Should(
		ContainElement(And(HaveField("Type", watch.Deleted), HaveField("Name", "run1-gc"))))
	g.Expect(localRec.created()).To(BeEmpty(), "no Pod on the control cluster")

	t.Run("The execution cluster's connection has the control cluster's rate limits, not client-go's 5/s.", func(t *testing.T) {
		g := NewWithT(t)
		c, err := e.clusters.get(bg, ec.Name)
		g.Expect(err).NotTo(HaveOccurred())
		cfg := c.cluster.GetConfig()
		g.Expect([]any{cfg.QPS, cfg.Burst}).To(Equal([]any{float32(77), 177}))
	})

	t.Run("Outputs a coordinator leaves on a stage Pod there land in the run's status.", func(t *testing.T) {
		g := NewWithT(t)
		createWorkflow(t, ns, "outputs", []*cyclonev1alpha1.Stage{stage(ns, "build", forever())}, items("build"))
		createRun(t, ns, "run3", "outputs", func(r *cyclonev1alpha1.WorkflowRun) {
			r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{Cluster: ec.Name}
		})
		g.Eventually(remoteRec.created).WithTimeout(30 * time.Second).Should(ContainElement(convention.PodName("run3", "build", 1)))
		// kwok cannot run gyre coordinator, which leaves the outputs in
		// its termination message: the test ends the Pod as the kubelet
		// would.
		endPod(t, remoteClient, worker, convention.PodName("run3", "build", 1), `[{"key":"image","value":"repo/app:v1"}]`)
		run := waitRun(t, ns, "run3", cyclonev1alpha1.StatusSucceeded)
		g.Expect(run.Status.Stages["build"].Outputs).To(Equal([]cyclonev1alpha1.KeyValue{{Key: "image", Value: "repo/app:v1"}}))
	})

	t.Run("A run naming a missing ExecutionCluster fails and says so.", func(t *testing.T) {
		g := NewWithT(t)
		createRun(t, ns, "run2", "diamond", func(r *cyclonev1alpha1.WorkflowRun) {
			r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{Cluster: "nowhere"}
		})
		g.Eventually(func(g Gomega) {
			run := getRun(g, ns, "run2")
			g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
			g.Expect(run.Status.Overall.Reason).To(Equal(ReasonClusterNotFound))
			g.Expect(run.Status.Overall.Message).To(ContainSubstring("nowhere"))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})
}
