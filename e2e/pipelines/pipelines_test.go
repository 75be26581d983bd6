package pipelines

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/e2etest"
	"github.com/gyreops/gyre/internal/testcluster"
)

// pipelines is a tenant's directory: a Git source, a stage that checks it
// out through gyre's resolver and hands a file on as an artifact, a stage
// that reads it, one that fails, and one that runs until stopped.
var pipelines = map[string]string{
	"resources.yaml": `apiVersion: cyclone.dev/v1alpha1
kind: Resource
metadata:
  name: source
spec:
  type: Git
  parameters:
  - name: SCM_URL
    value: {{URL}}
  - name: SCM_REVISION
    value: main
`,
	"stages.yaml": `apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: fetch
spec:
  pod:
    inputs:
      resources:
      - name: source
        path: /workspace/src
    outputs:
      artifacts:
      - name: listing
        path: /workspace/listing.txt
    spec:
      containers:
      - name: main
        image: ` + testcluster.BusyboxImage + `
        command:
        - sh
        - -c
        - |
          find /workspace/src/tenants -type f | sort > /workspace/listing.txt
          echo "files:$(wc -l < /workspace/listing.txt)" >> /cyclone/results/__result__
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: use
spec:
  pod:
    inputs:
      artifacts:
      - name: listing
        path: /workspace/in/listing.txt
    spec:
      containers:
      - name: main
        image: ` + testcluster.BusyboxImage + `
        command:
        - sh
        - -c
        - |
          grep -q stages.yaml /workspace/in/listing.txt
          echo "checked:$(wc -l < /workspace/in/listing.txt) files" >> /cyclone/results/__result__
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: broken
spec:
  pod:
    spec:
      containers:
      - name: main
        image: ` + testcluster.BusyboxImage + `
        command: [sh, -c, "echo the database is down; exit 7"]
---
apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: long
spec:
  pod:
    spec:
      containers:
      - name: main
        image: ` + testcluster.BusyboxImage + `
        # A workload that stops on SIGTERM, as a well-behaved one does.
        command: [sh, -c, "trap 'exit 143' TERM; sleep 600 & wait"]
`,
	"workflows.yaml": `apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: handoff
spec:
  stages:
  - name: fetch
  - name: use
    depends: [fetch]
    artifacts:
    - name: listing
      source: fetch/listing
---
apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: fails
spec:
  stages:
  - name: broken
---
apiVersion: cyclone.dev/v1alpha1
kind: Workflow
metadata:
  name: runs-long
spec:
  stages:
  - name: long
`,
}

func startRun(g Gomega, r *e2etest.Tenant, name, workflow string) *cyclonev1alpha1.WorkflowRun {
	return r.StartRun(g, k8s, name, workflow)
}

func waitFinished(g Gomega, run *cyclonev1alpha1.WorkflowRun) *cyclonev1alpha1.WorkflowRun {
	return e2etest.WaitFinished(g, k8s, run)
}

func TestRealNode_artifactPassesBetweenStages(t *testing.T) {
	testcluster.SkipWithoutRealNode(t)
	g := NewWithT(t)
	startGyre(t)
	r := newTenant(t, "handoff", pipelines)

	start := time.Now()
	run := waitFinished(g, startRun(g, r, "handoff-1", "handoff"))
	t.Logf("run of 2 stages took %s (status: %s)", time.Since(start).Round(100*time.Millisecond),
		run.Status.Overall.CompletionTime.Sub(run.Status.Overall.StartTime.Time))
	g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded), "%+v", run.Status)
	g.Expect(run.Status.Stages["fetch"].Outputs).To(ContainElement(cyclonev1alpha1.KeyValue{Key: "files", Value: "3"}),
		"the checkout through gyre's resolver has the tenant's three files")
	g.Expect(run.Status.Stages["use"].Outputs).To(ContainElement(cyclonev1alpha1.KeyValue{Key: "checked", Value: "3 files"}),
		"the second stage read the first stage's artifact")

	var pods corev1.PodList
	g.Expect(k8s.List(bg, &pods, client.InNamespace(r.Worker()))).To(Succeed())
	g.Expect(pods.Items).To(BeEmpty(), "stage Pods and the GC Pod are removed")
}

func TestRealNode_failingStageReportsItsExitCode(t *testing.T) {
	testcluster.SkipWithoutRealNode(t)
	g := NewWithT(t)
	startGyre(t)
	r := newTenant(t, "fails", pipelines)

	run := waitFinished(g, startRun(g, r, "fails-1", "fails"))
	g.Expect(run.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
	st := run.Status.Stages["broken"]
	g.Expect(st).NotTo(BeNil())
	g.Expect(st.Status.Phase).To(Equal(cyclonev1alpha1.StatusFailed))
	g.Expect(st.Status.Message).To(HavePrefix("container main exited with code 7"), "the message names the workload and its exit code")
}

func TestRealNode_stopCancelsARunAndItsPods(t *testing.T) {
	testcluster.SkipWithoutRealNode(t)
	g := NewWithT(t)
	startGyre(t)
	r := newTenant(t, "stops", pipelines)

	run := startRun(g, r, "long-1", "runs-long")
	var pod corev1.Pod
	g.Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(k8s.List(bg, &pods, client.InNamespace(r.Worker()))).To(Succeed())
		g.Expect(pods.Items).To(HaveLen(1))
		pod = pods.Items[0]
		g.Expect(pod.Status.ContainerStatuses).To(ContainElement(And(
			HaveField("Name", "main"), HaveField("State.Running", Not(BeNil())))), "the workload runs")
	}).WithTimeout(time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())

	patch := client.MergeFrom(run.DeepCopy())
	run.Spec.Stop = true
	g.Expect(k8s.Patch(bg, run, patch)).To(Succeed())
	stopped := time.Now()
	got := waitFinished(g, run)
	g.Expect(got.Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusCancelled))
	g.Expect(got.Status.Stages["long"].Status.Phase).To(Equal(cyclonev1alpha1.StatusCancelled))
	t.Logf("cancelled and cleaned up %s after spec.stop", time.Since(stopped).Round(100*time.Millisecond))
	g.Eventually(func(g Gomega) {
		err := k8s.Get(bg, client.ObjectKeyFromObject(&pod), &corev1.Pod{})
		g.Expect(client.IgnoreNotFound(err)).To(Succeed())
		g.Expect(err).To(HaveOccurred(), "the stage Pod is gone")
	}).WithTimeout(time.Minute).Should(Succeed())
}
