package exec

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

// TestEngine_templateStageIsNeverRun: a run whose Workflow names a stage
// template, made through the API where render cannot refuse it, fails
// that stage and says what to do; no Pod is made for it.
func TestEngine_templateStageIsNeverRun(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	ns := newTenant(t)
	startEngine(t, env.Config, testConfig())
	tmpl := stage(ns, "go-build", succeed("0s"))
	tmpl.Labels = map[string]string{cyclonev1alpha1.LabelStageTemplate: "true"}
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{tmpl}, items("go-build"))
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusFailed)
	ss := run.Status.Stages["go-build"]
	g.Expect(ss.Status.Reason).To(Equal(ReasonInvalidStage))
	g.Expect(ss.Status.Message).To(Equal("stage go-build is a template (labelled stage.cyclone.dev/template), which is never run; " +
		"copy it into a Stage without the label and name the copy in the Workflow"))
	pods := &corev1.PodList{}
	g.Expect(k8s.List(bg, pods, client.InNamespace("cyclone-"+Tenant(ns)+"-worker"))).To(Succeed())
	for _, p := range pods.Items {
		g.Expect(p.Name).NotTo(HavePrefix(convention.PodName("run1", "go-build", 1)))
	}
}
