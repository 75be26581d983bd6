package exec

import (
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/podbuild"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// TestEngine_imageOutputNeedsAPrivilegedTenant: under a baseline Tenant a
// stage that outputs an image gets no privileged Docker daemon; the stage
// fails and says how to allow it.
func TestEngine_imageOutputNeedsAPrivilegedTenant(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	startEngine(t, env.Config, testConfig())
	img := &cyclonev1alpha1.Resource{ObjectMeta: metav1.ObjectMeta{Name: "img", Namespace: ns}, Spec: cyclonev1alpha1.ResourceSpec{
		Type: cyclonev1alpha1.ImageResourceType, Resolver: "cyclone-resolver-image:v1"}}
	g.Expect(k8s.Create(bg, img)).To(Succeed())
	build := stage(ns, "build", succeed("0s"))
	build.Spec.Pod.Outputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "img"}}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{build}, items("build"))
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	ss := run.Status.Stages["build"]
	g.Expect(ss.Status.Reason).To(Equal(ReasonInvalidStage))
	g.Expect(ss.Status.Message).To(Equal("stage build outputs image resource img: it needs a privileged Docker daemon; " +
		"set podSecurity: privileged on Tenant " + Tenant(ns) + " to allow it, or build images without Docker (gyre controller --no-dind)"))
}

// TestEngine_secretsTravelInARunSecret: a stage's secret references reach
// its containers through a Secret of the run in the worker namespace,
// never in clear in the Pod, and the Secret goes with the run.
func TestEngine_secretsTravelInARunSecret(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns, worker := startKeepingPods(t)
	const token = "ghp_not-in-any-pod"
	g.Expect(k8s.Create(bg, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git", Namespace: ns},
		Data: map[string][]byte{"token": []byte(token)}})).To(Succeed())
	build := stage(ns, "build", forever())
	build.Spec.Pod.Inputs.Arguments = []cyclonev1alpha1.ArgumentValue{{Name: "token", Value: ptr.To("${secrets." + ns + ":git/data.token}")}}
	main := &build.Spec.Pod.Spec.Containers[0]
	main.Command = []string{"sh", "-c", "git clone https://ci:{{ token }}@git.example/app"}
	main.Env = []corev1.EnvVar{{Name: "TOKEN", Value: "{{ token }}"}}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{build}, items("build"))
	run := createRun(t, ns, "run1", "wf")

	pod := &corev1.Pod{}
	g.Eventually(func() error { return k8s.Get(bg, key(worker, convention.PodName("run1", "build", 1)), pod) }).WithTimeout(30 * time.Second).Should(Succeed())
	data, err := json.Marshal(pod)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).NotTo(ContainSubstring(token), "the Pod spec has no secret value in clear")

	secret := &corev1.Secret{}
	g.Expect(k8s.Get(bg, key(worker, podbuild.RunSecretName(convention.PodName("run1", "build", 1))), secret)).To(Succeed())
	g.Expect(secret.Data).To(Equal(map[string][]byte{"GYRE_SECRET_0": []byte(token)}))
	g.Expect(secret.Labels).To(HaveKeyWithValue(convention.LabelRunUID, string(getRun(g, ns, "run1").UID)))

	ref := &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: podbuild.RunSecretName(convention.PodName("run1", "build", 1))}, Key: "GYRE_SECRET_0"}}
	ctr := pod.Spec.Containers[0]
	g.Expect(ctr.Env).To(ContainElements(
		corev1.EnvVar{Name: "GYRE_SECRET_0", ValueFrom: ref},
		corev1.EnvVar{Name: "TOKEN", ValueFrom: ref}))
	g.Expect(ctr.Command).To(Equal([]string{"sh", "-c", "git clone https://ci:$(GYRE_SECRET_0)@git.example/app"}),
		"the kubelet expands the variable in the command")
	g.Expect(pod.Spec.AutomountServiceAccountToken).To(HaveValue(BeFalse()))

	// The run Secret goes when the run does.
	g.Expect(k8s.Delete(bg, run)).To(Succeed())
	g.Eventually(func(g Gomega) {
		list := &corev1.SecretList{}
		g.Expect(k8s.List(bg, list, client.InNamespace(worker), client.MatchingLabels{convention.LabelRunUID: string(run.UID)})).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// TestEngine_tellsTheCoordinatorTheWorkloadEnded: a stage Pod has no API
// access, so the engine tells its coordinator, through an annotation the
// kubelet projects into the coordinator's volume, how the workload
// containers ended; the outputs come back in the coordinator's
// termination message.
func TestEngine_tellsTheCoordinatorTheWorkloadEnded(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns, worker := startKeepingPods(t)
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "build", forever())}, items("build"))
	createRun(t, ns, "run1", "wf")

	// kwok runs no container: the test writes what the kubelet reports
	// once the workload container "main" has exited with 3 and the
	// coordinator still runs.
	g.Eventually(func(g Gomega) {
		pod := &corev1.Pod{}
		g.Expect(k8s.Get(bg, key(worker, convention.PodName("run1", "build", 1)), pod)).To(Succeed())
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{
			{Name: "main", Image: "busybox", ImageID: "busybox", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", StartedAt: metav1.Now(), FinishedAt: metav1.Now()}}},
			{Name: podbuild.CoordinatorName, Image: "gyre", ImageID: "gyre", Ready: true, State: corev1.ContainerState{
				Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}},
		}
		g.Expect(k8s.Status().Update(bg, pod)).To(Succeed())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	g.Eventually(func(g Gomega) {
		pod := &corev1.Pod{}
		g.Expect(k8s.Get(bg, key(worker, convention.PodName("run1", "build", 1)), pod)).To(Succeed())
		g.Expect(pod.Annotations).To(HaveKeyWithValue(convention.WorkloadExitAnnotation, `{"main":3}`))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	endPod(t, k8s, worker, convention.PodName("run1", "build", 1), `[{"key":"tests","value":"12 failed"}]`)
	g.Eventually(func(g Gomega) {
		run := getRun(g, ns, "run1")
		g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
		g.Expect(run.Status.Stages["build"].Outputs).To(Equal([]cyclonev1alpha1.KeyValue{{Key: "tests", Value: "12 failed"}}))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// TestEngine_restrictedTenantRunsWithAllHelpers: in a worker namespace
// where the API server enforces restricted, a stage whose own containers
// are restricted runs with all of gyre's helpers (input and output
// resolvers, the gyre installer, the coordinator) and is cleaned up by a
// restricted GC Pod.
func TestEngine_restrictedTenantRunsWithAllHelpers(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	// The API server enforces the level too, as on the worker namespaces
	// gyre provisions.
	setPodSecurity(t, ns, podsecurity.Restricted)
	startEngine(t, env.Config, testConfig())
	for _, res := range []*cyclonev1alpha1.Resource{
		{ObjectMeta: metav1.ObjectMeta{Name: "src", Namespace: ns}, Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.GitResourceType,
			Parameters: []cyclonev1alpha1.ParameterItem{{Name: "SCM_URL", Value: ptr.To("https://git.example/app")}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tar", Namespace: ns}, Spec: cyclonev1alpha1.ResourceSpec{Type: cyclonev1alpha1.HTTPResourceType,
			Parameters: []cyclonev1alpha1.ParameterItem{{Name: "URL", Value: ptr.To("https://files.example/app.tar")}}}},
	} {
		g.Expect(k8s.Create(bg, res)).To(Succeed())
	}
	build := stage(ns, "build", succeed("0s"))
	build.Spec.Pod.Inputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "src", Path: "/src"}}
	build.Spec.Pod.Outputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "tar", Path: "/out"}}
	build.Spec.Pod.Outputs.Artifacts = []cyclonev1alpha1.ArtifactItem{{Name: "bin", Path: "/src/bin"}}
	build.Spec.Pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000), AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{build}, items("build"))
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	g.Expect(run.Status.GC.Phase).To(Equal(cyclonev1alpha1.GCSucceeded), "the GC Pod passed restricted too")
}
