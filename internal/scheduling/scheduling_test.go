package scheduling

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
)

func TestCheck(t *testing.T) {
	none := &gyrev1alpha1.TenantScheduling{}
	builders := &gyrev1alpha1.TenantScheduling{
		NodeSelector: map[string]string{"pool": "builds"},
		Tolerations: []corev1.Toleration{
			{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "builds", Effect: corev1.TaintEffectNoSchedule},
			{Key: "gpu", Operator: corev1.TolerationOpExists},
			{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](60)},
		},
		PriorityClassNames: []string{"builds-low"},
		RuntimeClassNames:  []string{"gvisor"},
	}
	controlPlane := corev1.Toleration{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	for _, tc := range []struct {
		name  string
		rules *gyrev1alpha1.TenantScheduling
		spec  corev1.PodSpec
		want  []string
	}{
		{"A Pod that asks for nothing passes a Tenant without scheduling.", none, corev1.PodSpec{}, nil},
		{"Without scheduling, a toleration of the control plane's taint is refused.", none,
			corev1.PodSpec{Tolerations: []corev1.Toleration{controlPlane}},
			[]string{`tolerations[0]: toleration "node-role.kubernetes.io/control-plane:NoSchedule" is not among the Tenant's spec.scheduling.tolerations (none)`}},
		{"Without scheduling, a runtime class, which may bring tolerations of its own, is refused.", none,
			corev1.PodSpec{RuntimeClassName: ptr.To("kata-on-gpu-pool")},
			[]string{`runtimeClassName: "kata-on-gpu-pool" is not among the Tenant's spec.scheduling.runtimeClassNames (none)`}},
		{"Without scheduling, a priority class is refused.", none,
			corev1.PodSpec{PriorityClassName: "system-node-critical"},
			[]string{`priorityClassName: "system-node-critical" is not among the Tenant's spec.scheduling.priorityClassNames (none)`}},
		{"A node name is refused whatever the Tenant allows.", builders,
			corev1.PodSpec{NodeName: "cp-1"},
			[]string{`nodeName: "cp-1": a tenant's Pod may not name its node, which skips the scheduler and the node's taints; select nodes with nodeSelector or affinity`}},
		{"The tolerations the API server adds to every Pod pass.", none,
			corev1.PodSpec{Tolerations: []corev1.Toleration{
				{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
				{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
			}}, nil},
		{"When the Tenant is not known, only a node name is refused.", nil,
			corev1.PodSpec{NodeName: "cp-1", Tolerations: []corev1.Toleration{controlPlane}, PriorityClassName: "system-node-critical"},
			[]string{`nodeName: "cp-1": a tenant's Pod may not name its node, which skips the scheduler and the node's taints; select nodes with nodeSelector or affinity`}},
		{"Allowed tolerations, narrower ones, an allowed class and more node labels pass.", builders,
			corev1.PodSpec{
				NodeSelector: map[string]string{"pool": "builds", "disk": "ssd"},
				Tolerations: []corev1.Toleration{
					{Key: "dedicated", Value: "builds", Effect: corev1.TaintEffectNoSchedule}, // Equal is the default operator
					{Key: "gpu", Value: "a100", Effect: corev1.TaintEffectNoSchedule},
					{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)},
				},
				PriorityClassName: "builds-low",
				RuntimeClassName:  ptr.To("gvisor"),
			}, nil},
		{"Wider tolerations, another selector value and another class are refused, each named.", builders,
			corev1.PodSpec{
				NodeSelector: map[string]string{"pool": "infra"},
				Tolerations: []corev1.Toleration{
					{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
					{Key: "dedicated", Value: "payments", Effect: corev1.TaintEffectNoSchedule},
					{Key: "dedicated", Value: "builds", Effect: corev1.TaintEffectNoExecute},
					{Key: "spot", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
					{Operator: corev1.TolerationOpExists},
				},
				PriorityClassName: "builds-high",
				RuntimeClassName:  ptr.To("runc"),
			},
			[]string{
				`nodeSelector.pool: "infra": the Tenant's spec.scheduling.nodeSelector keeps its Pods on pool=builds`,
				`tolerations[0]: toleration "dedicated:NoSchedule" is not among the Tenant's spec.scheduling.tolerations ("dedicated=builds:NoSchedule", "gpu", "spot:NoExecute for 60s")`,
				`tolerations[1]: toleration "dedicated=payments:NoSchedule" is not among the Tenant's spec.scheduling.tolerations ("dedicated=builds:NoSchedule", "gpu", "spot:NoExecute for 60s")`,
				`tolerations[2]: toleration "dedicated=builds:NoExecute" is not among the Tenant's spec.scheduling.tolerations ("dedicated=builds:NoSchedule", "gpu", "spot:NoExecute for 60s")`,
				`tolerations[3]: toleration "spot:NoExecute" is not among the Tenant's spec.scheduling.tolerations ("dedicated=builds:NoSchedule", "gpu", "spot:NoExecute for 60s")`,
				`tolerations[4]: toleration "every taint" is not among the Tenant's spec.scheduling.tolerations ("dedicated=builds:NoSchedule", "gpu", "spot:NoExecute for 60s")`,
				`priorityClassName: "builds-high" is not among the Tenant's spec.scheduling.priorityClassNames (builds-low)`,
				`runtimeClassName: "runc" is not among the Tenant's spec.scheduling.runtimeClassNames (gvisor)`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var got []string
			for _, v := range Check(tc.rules, &tc.spec) {
				got = append(got, v.String())
			}
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestApply(t *testing.T) {
	g := NewWithT(t)
	rules := &gyrev1alpha1.TenantScheduling{
		NodeSelector: map[string]string{"pool": "builds"},
		Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "builds", Effect: corev1.TaintEffectNoSchedule}},
	}
	spec := corev1.PodSpec{
		NodeSelector: map[string]string{"disk": "ssd"},
		Tolerations:  []corev1.Toleration{{Key: "dedicated", Value: "builds", Effect: corev1.TaintEffectNoSchedule}},
	}
	Apply(rules, &spec)
	g.Expect(spec.NodeSelector).To(Equal(map[string]string{"disk": "ssd", "pool": "builds"}), "the Stage's own labels stay, the Tenant's are added")
	g.Expect(spec.Tolerations).To(HaveLen(1), "a toleration the Stage already has is not added twice")
	g.Expect(Check(rules, &spec)).To(BeEmpty(), "what Apply gives passes Check")

	empty := corev1.PodSpec{}
	Apply(rules, &empty)
	g.Expect(empty.NodeSelector).To(Equal(rules.NodeSelector))
	g.Expect(empty.Tolerations).To(Equal(rules.Tolerations))
	rules.NodeSelector["pool"] = "other"
	g.Expect(empty.NodeSelector).To(HaveKeyWithValue("pool", "builds"), "the Pod does not share the Tenant's map")

	Apply(nil, &empty)
	g.Expect(empty.Tolerations).To(HaveLen(1), "no scheduling adds nothing")
}
