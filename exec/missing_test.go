package exec

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// TestEngine_missingObjects: a run whose Workflow, Stage or Resource the
// engine has not seen yet waits for it, measured from the run's creation,
// and fails naming the object only once the grace period is over.
func TestEngine_missingObjects(t *testing.T) {
	requireCluster(t)
	tests := []struct {
		name string
		// grace is the engine's MissingGracePeriod.
		grace time.Duration
		// before is created with the run, after once the run waits.
		before, after func(ns string) []client.Object
		// waiting is the object the run or stage says it waits for.
		waiting string
		phase   cyclonev1alpha1.StatusPhase
		// message is the failed run's message.
		message string
	}{{
		name:  "A run created before its Workflow and Stage runs once they arrive.",
		grace: 30 * time.Second,
		after: func(ns string) []client.Object {
			return []client.Object{stage(ns, "build", succeed("0s")), workflowOf(ns, "wf", "build")}
		},
		waiting: "workflow wf",
		phase:   cyclonev1alpha1.StatusSucceeded,
	}, {
		name:    "A stage whose Stage arrives after the run runs.",
		grace:   30 * time.Second,
		before:  func(ns string) []client.Object { return []client.Object{workflowOf(ns, "wf", "build")} },
		after:   func(ns string) []client.Object { return []client.Object{stage(ns, "build", succeed("0s"))} },
		waiting: "stage build",
		phase:   cyclonev1alpha1.StatusSucceeded,
	}, {
		name:  "A stage whose input Resource arrives after the run runs.",
		grace: 30 * time.Second,
		before: func(ns string) []client.Object {
			build := stage(ns, "build", succeed("0s"))
			build.Spec.Pod.Inputs.Resources = []cyclonev1alpha1.ResourceItem{{Name: "src", Path: "/workspace/src"}}
			return []client.Object{build, workflowOf(ns, "wf", "build")}
		},
		after: func(ns string) []client.Object {
			return []client.Object{&cyclonev1alpha1.Resource{ObjectMeta: metav1.ObjectMeta{Name: "src", Namespace: ns},
				Spec: cyclonev1alpha1.ResourceSpec{Type: "Git", Resolver: "resolver:v1"}}}
		},
		waiting: "resource src",
		phase:   cyclonev1alpha1.StatusSucceeded,
	}, {
		name:    "A run whose Workflow never comes fails after the grace period, naming the Workflow.",
		grace:   3 * time.Second,
		waiting: "workflow wf",
		phase:   cyclonev1alpha1.StatusFailed,
		message: "workflow wf not found in namespace %s 3s after the run was created",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newTenant(t)
			cfg := testConfig()
			cfg.MissingGracePeriod = tt.grace
			_, stop := startEngine(t, env.Config, cfg)
			defer stop()
			create := func(objs func(string) []client.Object) {
				if objs == nil {
					return
				}
				for _, o := range objs(ns) {
					g.Expect(k8s.Create(bg, o)).To(Succeed())
				}
			}
			create(tt.before)
			createRun(t, ns, "run1", "wf")

			g.Eventually(func(g Gomega) {
				run := getRun(g, ns, "run1")
				msgs := []string{run.Status.Overall.Message}
				for _, ss := range run.Status.Stages {
					msgs = append(msgs, ss.Status.Message)
				}
				g.Expect(msgs).To(ContainElement("waiting for "+tt.waiting+", which the engine has not seen yet"), "status: %+v", run.Status)
				g.Expect(run.Status.Overall.Phase).NotTo(Equal(cyclonev1alpha1.StatusFailed))
			}).WithTimeout(10 * time.Second).Should(Succeed())
			create(tt.after)

			run := waitRunFor(t, ns, "run1", tt.phase, tt.grace+30*time.Second)
			if tt.message != "" {
				g.Expect(run.Status.Overall.Reason).To(Equal(ReasonInvalidWorkflow))
				g.Expect(run.Status.Overall.Message).To(Equal(fmt.Sprintf(tt.message, ns)))
			}
		})
	}
}

// workflowOf is a Workflow of stages that depend on nothing.
func workflowOf(ns, name string, stages ...string) *cyclonev1alpha1.Workflow {
	return &cyclonev1alpha1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: cyclonev1alpha1.WorkflowSpec{Stages: items(stages...)}}
}
