package exec

import (
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// hostStage is the Stage of an attacker who wants the node: privileged,
// in the host's PID namespace, with the host's root mounted.
func hostStage(ns, name string) *cyclonev1alpha1.Stage {
	st := stage(ns, name, succeed("200ms"))
	spec := &st.Spec.Pod.Spec
	spec.HostPID = true
	spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
	spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	return st
}

// waitRefused waits until a run has failed for reason with a message
// containing want, and checks that gyre created none of its Pods, in any
// namespace.
func waitRefused(t *testing.T, ns, name, reason, want string) *cyclonev1alpha1.WorkflowRun {
	t.Helper()
	g := NewWithT(t)
	var run *cyclonev1alpha1.WorkflowRun
	g.Eventually(func(g Gomega) {
		run = getRun(g, ns, name)
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed), "overall: %+v", run.Status.Overall)
		g.Expect(run.Status.Overall.Reason).To(Equal(reason))
		g.Expect(run.Status.Overall.Message).To(ContainSubstring(want))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	pods := &corev1.PodList{}
	g.Expect(k8s.List(bg, pods, client.MatchingLabels{convention.LabelRunUID: string(run.UID)})).To(Succeed())
	g.Expect(pods.Items).To(BeEmpty(), "no Pod of the run exists anywhere")
	return run
}

// runRefusedStage runs st alone, with retries to spare, in the tenant
// namespace ns, and returns its status once the run has failed. The stage
// must not have been retried, since only a change to its spec helps, nor
// have got a Pod.
func runRefusedStage(t *testing.T, ns string, st *cyclonev1alpha1.Stage) *cyclonev1alpha1.StageStatus {
	t.Helper()
	g := NewWithT(t)
	own := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{st}, items(st.Name),
		func(wf *cyclonev1alpha1.Workflow) { wf.Spec.Stages[0].Retries = 2 })
	createRun(t, ns, "run", "wf")
	run := waitRun(t, ns, "run", cyclonev1alpha1.StatusFailed)
	ss := run.Status.Stages[st.Name]
	g.Expect(ss).NotTo(BeNil())
	g.Expect(ss.Attempt).To(BeEquivalentTo(1), "no retry: the spec must change")
	g.Expect(own.created()).NotTo(ContainElement(convention.PodName("run", st.Name, 1)))
	return ss
}

// TestEngine_runsOnlyForATenant: the engine runs nothing in a namespace no
// Tenant owns, and says why on the run.
func TestEngine_runsOnlyForATenant(t *testing.T) {
	requireCluster(t)
	startEngine(t, env.Config, testConfig())

	namespace := func(t *testing.T, prefix string) string {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
		NewWithT(t).Expect(k8s.Create(bg, ns)).To(Succeed())
		t.Cleanup(func() { _ = k8s.Delete(bg, ns) })
		return ns.Name
	}

	t.Run("A run in a namespace without the cyclone- prefix fails with NoTenant and creates no Pod.", func(t *testing.T) {
		ns := namespace(t, "plain-")
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("0s"))}, items("build"))
		createRun(t, ns, "run", "wf")
		waitRefused(t, ns, "run", ReasonNoTenant, "namespace "+ns+" belongs to no Tenant")
	})

	t.Run("A run in cyclone-<t> fails with NoTenant when there is no Tenant t.", func(t *testing.T) {
		ns := namespace(t, "cyclone-orphan")
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("0s"))}, items("build"))
		createRun(t, ns, "run", "wf")
		waitRefused(t, ns, "run", ReasonNoTenant, "gyre runs WorkflowRuns only in tenant namespaces cyclone-<tenant>")
	})

	t.Run("A run of a Tenant being deleted fails with NoTenant.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		tn := &gyrev1alpha1.Tenant{}
		g.Expect(k8s.Get(bg, client.ObjectKey{Name: Tenant(ns)}, tn)).To(Succeed())
		tn.Finalizers = []string{"test.gyre.dev/hold"}
		g.Expect(k8s.Update(bg, tn)).To(Succeed())
		t.Cleanup(func() { updateTenant(t, ns, func(tn *gyrev1alpha1.Tenant) { tn.Finalizers = nil }) })
		g.Expect(k8s.Delete(bg, tn)).To(Succeed())
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("0s"))}, items("build"))
		createRun(t, ns, "run", "wf")
		waitRefused(t, ns, "run", ReasonNoTenant, "being deleted")
	})

	t.Run("A run created right after its Tenant runs: the engine does not take its cache's lag for a missing Tenant.", func(t *testing.T) {
		ns := newTenant(t)
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("0s"))}, items("build"))
		createRun(t, ns, "run", "wf")
		waitRun(t, ns, "run", cyclonev1alpha1.StatusSucceeded)
	})
}

// TestEngine_executionContextIsGyres: a run cannot choose where it runs or
// whom it runs as; the engine refuses it before creating anything.
func TestEngine_executionContextIsGyres(t *testing.T) {
	requireCluster(t)
	startEngine(t, env.Config, testConfig())

	for _, tc := range []struct {
		name   string
		mutate func(*cyclonev1alpha1.WorkflowRun)
		want   string
	}{
		{
			name: "A run whose executionContext.namespace is kube-system, with a privileged hostPID hostPath Stage, fails and no Pod exists outside the worker namespace.",
			mutate: func(r *cyclonev1alpha1.WorkflowRun) {
				r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{Namespace: "kube-system"}
			},
			want: `spec.executionContext.namespace "kube-system"`,
		},
		{
			name: "A run naming another tenant's worker namespace fails.",
			mutate: func(r *cyclonev1alpha1.WorkflowRun) {
				r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{Namespace: "cyclone-other-worker"}
			},
			want: `spec.executionContext.namespace "cyclone-other-worker"`,
		},
		{
			name: "A run naming a cluster its Tenant does not list fails.",
			mutate: func(r *cyclonev1alpha1.WorkflowRun) {
				r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{Cluster: "production"}
			},
			want: `spec.executionContext.cluster "production" is not a cluster of tenant`,
		},
		{
			name: "A run naming another PVC fails.",
			mutate: func(r *cyclonev1alpha1.WorkflowRun) {
				r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{PVC: "cyclone-pvc-other"}
			},
			want: `spec.executionContext.pvc "cyclone-pvc-other"`,
		},
		{
			name:   "A run asking for gyre's own ServiceAccount fails.",
			mutate: func(r *cyclonev1alpha1.WorkflowRun) { r.Spec.ServiceAccount = "gyre-controller" },
			want:   `spec.serviceAccount "gyre-controller": gyre's own ServiceAccount may not run stages`,
		},
		{
			name: "A run asking for a ServiceAccount of another namespace fails.",
			mutate: func(r *cyclonev1alpha1.WorkflowRun) {
				r.Spec.ServiceAccount = "system:serviceaccount:kube-system:default"
			},
			want: `must be the plain name of a ServiceAccount in the worker namespace`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			worker := "cyclone-" + Tenant(ns) + "-worker"
			system := recordPods(t, k8s, "kube-system")
			own := recordPods(t, k8s, worker)
			createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{hostStage(ns, "root")}, items("root"))
			createRun(t, ns, "run", "wf", tc.mutate)
			waitRefused(t, ns, "run", ReasonExecutionContextRefused, tc.want)
			g.Consistently(func() []string { return append(system.created(), own.created()...) }).
				WithTimeout(time.Second).Should(BeEmpty())
		})
	}

	t.Run("A Stage whose Pod names gyre's own ServiceAccount fails without a Pod.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		own := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
		st := stage(ns, "build", succeed("0s"))
		st.Spec.Pod.Spec.ServiceAccountName = "gyre-controller"
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{st}, items("build"))
		createRun(t, ns, "run", "wf")
		g.Eventually(func(g Gomega) {
			run := getRun(g, ns, "run")
			g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
			g.Expect(run.Status.Stages["build"].Status.Reason).To(Equal(ReasonExecutionContextRefused))
			g.Expect(run.Status.Stages["build"].Status.Message).To(ContainSubstring(`serviceAccountName "gyre-controller"`))
			g.Expect(run.Status.Stages["build"].Pod).NotTo(BeNil(), "the attempt was recorded")
		}).WithTimeout(30 * time.Second).Should(Succeed())
		// The run's GC Pod may come and go; no stage Pod ever does.
		g.Consistently(own.created).WithTimeout(time.Second).ShouldNot(ContainElement(convention.PodName("run", "build", 1)))
	})

	t.Run("A run on one of its Tenant's clusters, named explicitly with its worker namespace and PVC, runs.", func(t *testing.T) {
		ns := newTenant(t)
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "build", succeed("0s"))}, items("build"))
		createRun(t, ns, "run", "wf", func(r *cyclonev1alpha1.WorkflowRun) {
			r.Spec.ExecutionContext = &cyclonev1alpha1.ExecutionContext{
				Namespace: "cyclone-" + Tenant(ns) + "-worker", PVC: "cyclone-pvc-" + Tenant(ns)}
		})
		waitRun(t, ns, "run", cyclonev1alpha1.StatusSucceeded)
	})
}

// TestEngine_checksPodSecurity: a Stage created through the API, which
// render never saw, gets no Pod beyond its Tenant's Pod Security level.
func TestEngine_checksPodSecurity(t *testing.T) {
	requireCluster(t)
	startEngine(t, env.Config, testConfig())

	t.Run("A privileged Stage of a baseline Tenant fails with the broken rules and never gets a Pod.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		ss := runRefusedStage(t, ns, hostStage(ns, "root"))
		g.Expect(ss.Status.Reason).To(Equal(ReasonPodSecurity))
		g.Expect(ss.Status.Message).To(And(
			ContainSubstring(`violates PodSecurity "baseline"`),
			ContainSubstring("privileged"), ContainSubstring("host namespaces"), ContainSubstring("hostPath volumes")))
	})

	t.Run("The same Stage runs when its Tenant is privileged.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		setPodSecurity(t, ns, podsecurity.Privileged)
		own := recordPods(t, k8s, "cyclone-"+Tenant(ns)+"-worker")
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{hostStage(ns, "root")}, items("root"))
		createRun(t, ns, "run", "wf")
		waitRun(t, ns, "run", cyclonev1alpha1.StatusSucceeded)
		g.Expect(own.created()).To(ContainElement(convention.PodName("run", "root", 1)))
	})

	t.Run("A Stage asking for host networking fails at restricted too, and a plain Stage of a restricted Tenant is checked at restricted.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		setPodSecurity(t, ns, podsecurity.Restricted)
		st := stage(ns, "net", succeed("0s"))
		st.Spec.Pod.Spec.HostNetwork = true
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{st}, items("net"))
		createRun(t, ns, "run", "wf")
		run := waitRun(t, ns, "run", cyclonev1alpha1.StatusFailed)
		g.Expect(run.Status.Stages["net"].Status.Reason).To(Equal(ReasonPodSecurity))
		g.Expect(run.Status.Stages["net"].Status.Message).To(ContainSubstring(`violates PodSecurity "restricted"`))
	})
}

// TestEngine_checkExecutionContext is the rule alone: which clusters,
// namespaces, PVCs and ServiceAccounts a run of a Tenant may name.
func TestEngine_checkExecutionContext(t *testing.T) {
	e := &Engine{cfg: Config{}.withDefaults()}
	local := &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	spread := local.DeepCopy()
	spread.Spec.Clusters = []gyrev1alpha1.TenantCluster{
		{Name: "staging"},
		{Name: "prod", ExecutionClusterRef: &gyrev1alpha1.ObjectReference{Name: "far"}},
	}
	remoteOnly := local.DeepCopy()
	remoteOnly.Spec.Clusters = spread.Spec.Clusters[1:]
	for _, tc := range []struct {
		name   string
		tenant *gyrev1alpha1.Tenant
		ec     *cyclonev1alpha1.ExecutionContext
		sa     string
		want   string // "" for allowed
	}{
		{name: "A run naming nothing runs on the control cluster of a Tenant without clusters.", tenant: local},
		{name: "A run naming its own worker namespace, PVC and the control cluster is allowed.", tenant: local,
			ec: &cyclonev1alpha1.ExecutionContext{Namespace: "cyclone-shop-worker", PVC: "cyclone-pvc-shop"}},
		{name: "A run naming another namespace is refused.", tenant: local,
			ec: &cyclonev1alpha1.ExecutionContext{Namespace: "default"}, want: "spec.executionContext.namespace"},
		{name: "A run naming another PVC is refused.", tenant: local,
			ec: &cyclonev1alpha1.ExecutionContext{PVC: "data"}, want: "spec.executionContext.pvc"},
		{name: "A run naming an ExecutionCluster of a Tenant without clusters is refused.", tenant: local,
			ec: &cyclonev1alpha1.ExecutionContext{Cluster: "far"}, want: `spec.executionContext.cluster "far"`},
		{name: "A run naming one of its Tenant's ExecutionClusters is allowed.", tenant: spread,
			ec: &cyclonev1alpha1.ExecutionContext{Cluster: "far"}},
		{name: "A run on the control cluster is allowed when a Tenant's cluster has no executionClusterRef.", tenant: spread},
		{name: "A run on the control cluster is refused when every cluster of its Tenant is remote.", tenant: remoteOnly,
			want: "spec.executionContext.cluster is empty"},
		{name: "A run naming a plain ServiceAccount is allowed.", tenant: local, sa: "builder"},
		{name: "A run naming gyre's ServiceAccount is refused.", tenant: local, sa: "gyre-controller", want: "gyre's own ServiceAccount"},
		{name: "A run naming a ServiceAccount by its user name is refused.", tenant: local,
			sa: "system:serviceaccount:gyre-system:gyre-controller", want: "plain name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			run := &cyclonev1alpha1.WorkflowRun{Spec: cyclonev1alpha1.WorkflowRunSpec{ExecutionContext: tc.ec, ServiceAccount: tc.sa}}
			err := e.checkExecutionContext(run, tc.tenant)
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			var refusal *refusedError
			g.Expect(errors.As(err, &refusal)).To(BeTrue())
			g.Expect(refusal.reason).To(Equal(ReasonExecutionContextRefused))
		})
	}
}

// TestEngine_checksScheduling: a Stage created through the API cannot
// pick its node or priority beyond its Tenant's spec.scheduling, and
// every Pod of a run, the GC Pod too, gets the Tenant's node selector and
// tolerations, which the scheduler then honours.
func TestEngine_checksScheduling(t *testing.T) {
	requireCluster(t)
	startEngine(t, env.Config, testConfig())

	t.Run("A Stage that names its node, tolerates the control plane and takes a system priority and a runtime class fails with each named and never gets a Pod.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		st := stage(ns, "squat", succeed("0s"))
		st.Spec.Pod.Spec.NodeName = "kwok-node-0"
		st.Spec.Pod.Spec.PriorityClassName = "system-node-critical"
		st.Spec.Pod.Spec.RuntimeClassName = ptr.To("runc")
		st.Spec.Pod.Spec.Tolerations = []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		ss := runRefusedStage(t, ns, st)
		g.Expect(ss.Status.Reason).To(Equal(ReasonScheduling))
		g.Expect(ss.Status.Message).To(And(
			ContainSubstring(`breaks the Tenant's scheduling: nodeName: "kwok-node-0"`),
			ContainSubstring(`tolerations[0]: toleration "node-role.kubernetes.io/control-plane:NoSchedule" is not among`),
			ContainSubstring(`priorityClassName: "system-node-critical" is not among`),
			ContainSubstring(`runtimeClassName: "runc" is not among`)))
	})

	t.Run("A Tenant's node selector and tolerations reach every Pod of its runs, and the Pods land on the selected node.", func(t *testing.T) {
		g := NewWithT(t)
		ns := newTenant(t)
		dedicated := corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "builds", Effect: corev1.TaintEffectNoSchedule}
		updateTenant(t, ns, func(tn *gyrev1alpha1.Tenant) {
			tn.Spec.Scheduling = &gyrev1alpha1.TenantScheduling{
				NodeSelector: map[string]string{"kubernetes.io/hostname": "kwok-node-1"},
				Tolerations:  []corev1.Toleration{dedicated},
			}
		})
		worker := "cyclone-" + Tenant(ns) + "-worker"
		w, err := k8s.Watch(bg, &corev1.PodList{}, client.InNamespace(worker))
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(w.Stop)
		var mu sync.Mutex
		seen := map[string]*corev1.Pod{} // the latest version of each Pod
		go func() {
			for ev := range w.ResultChan() {
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					mu.Lock()
					seen[pod.Name] = pod
					mu.Unlock()
				}
			}
		}()
		// The Stage tolerates the same taint itself: it is not doubled.
		st := stage(ns, "build", succeed("0s"))
		st.Spec.Pod.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Value: "builds", Effect: corev1.TaintEffectNoSchedule}}
		createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{st}, items("build"))
		createRun(t, ns, "run", "wf")
		waitRun(t, ns, "run", cyclonev1alpha1.StatusSucceeded)
		stagePod, gcPod := convention.PodName("run", "build", 1), convention.GCPodName("run")
		g.Eventually(func(g Gomega) {
			mu.Lock()
			defer mu.Unlock()
			for _, name := range []string{stagePod, gcPod} {
				pod := seen[name]
				g.Expect(pod).NotTo(BeNil(), "pod %s", name)
				g.Expect(pod.Spec.NodeSelector).To(HaveKeyWithValue("kubernetes.io/hostname", "kwok-node-1"), "pod %s", name)
				n := 0
				for _, tol := range pod.Spec.Tolerations {
					if tol.Key == "dedicated" {
						n++
					}
				}
				g.Expect(n).To(Equal(1), "pod %s tolerates dedicated=builds once: %+v", name, pod.Spec.Tolerations)
				g.Expect(pod.Spec.NodeName).To(Equal("kwok-node-1"), "the scheduler placed pod %s by the Tenant's selector", name)
			}
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})
}
