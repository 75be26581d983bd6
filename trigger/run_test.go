package trigger

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
)

func TestNewRun_labels(t *testing.T) {
	long := strings.Repeat("w", 64)
	tests := []struct {
		name     string
		labels   map[string]string
		workflow *corev1.ObjectReference
		want     map[string]string
	}{
		{
			name: "A run carries Cyclone's project and workflow labels and gyre's tenancy labels",
			labels: map[string]string{
				"project.cyclone.dev/name":  "shop",
				"gyre.dev/tenant":           "payments",
				"gyre.dev/target":           "eu",
				"cyclone.dev/project":       "shop",
				"workflow.cyclone.dev/name": "stale",
				"app":                       "api",
			},
			workflow: &corev1.ObjectReference{Name: "build"},
			want: map[string]string{
				convention.LabelTrigger:     "nightly",
				convention.LabelTriggerType: "Cron",
				"project.cyclone.dev/name":  "shop",
				"workflow.cyclone.dev/name": "build",
				"gyre.dev/tenant":           "payments",
				"gyre.dev/target":           "eu",
			},
		},
		{
			name:     "A trigger without a project label starts runs without one",
			workflow: &corev1.ObjectReference{Name: "build"},
			want: map[string]string{
				convention.LabelTrigger:     "nightly",
				convention.LabelTriggerType: "Cron",
				"workflow.cyclone.dev/name": "build",
			},
		},
		{
			name: "A trigger without a workflowRef starts runs without a workflow label",
			want: map[string]string{convention.LabelTrigger: "nightly", convention.LabelTriggerType: "Cron"},
		},
		{
			name:     "A Workflow name too long for a label value leaves the workflow label off",
			workflow: &corev1.ObjectReference{Name: long},
			want:     map[string]string{convention.LabelTrigger: "nightly", convention.LabelTriggerType: "Cron"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			trig := &cyclonev1alpha1.WorkflowTrigger{
				ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "demo", Labels: tt.labels},
				Spec: cyclonev1alpha1.WorkflowTriggerSpec{
					Type:            cyclonev1alpha1.TriggerTypeCron,
					WorkflowRunSpec: cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: tt.workflow},
				},
			}
			run := newRun(trig, "nightly-1", nil, nil)
			g.Expect(run.Labels).To(Equal(tt.want))
			g.Expect(run.Finalizers).To(ConsistOf(convention.RunFinalizer), "the engine need not add its finalizer with a write of its own")
		})
	}
}
