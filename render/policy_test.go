package render

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/podsecurity"
)

// policyTarget is the target of the testdata/policy cases: a tenant at
// the default level, without scheduling, that runs on the control
// cluster and on "build-eu".
var policyTarget = Target{Tenant: "t", Cluster: DefaultCluster, ExecutionClusters: []string{"", "build-eu"},
	Scheduling: &gyrev1alpha1.TenantScheduling{}}

// TestRender_refusesWhatEscapesTheTenant renders the repositories of
// testdata/policy, each asking for something the tenant was not given,
// and compares what a user sees with want.txt: errors first, then
// warnings prefixed "warning: ". A case with errors renders no object; a
// case with warnings only renders all of them.
func TestRender_refusesWhatEscapesTheTenant(t *testing.T) {
	cases, err := os.ReadDir("testdata/policy")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			g := NewWithT(t)
			root := filepath.Join("testdata/policy", c.Name())
			res, err := Render(context.Background(), root, policyTarget, Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(len(res.Errors) + len(res.Warnings)).NotTo(BeZero())
			if len(res.Errors) > 0 {
				g.Expect(res.Objects).To(BeEmpty(), "no partial output")
			} else {
				g.Expect(res.Objects).NotTo(BeEmpty())
			}
			golden(t, filepath.Join(root, "want.txt"), problemLines(res))
		})
	}
}

func problemLines(res *Result) []byte {
	var b strings.Builder
	b.Write(errorLines(res))
	for _, w := range res.Warnings {
		b.WriteString("warning: " + w.Error() + "\n")
	}
	return []byte(b.String())
}

// TestRender_podSecurityLevel renders one stage at each level: the level
// of the target decides, not the YAML.
func TestRender_podSecurityLevel(t *testing.T) {
	plain := "testdata/policy/run-foreign-pvc"   // a Stage that asks for nothing
	escape := "testdata/policy/privileged-stage" // privileged, hostPID, hostPath
	images := "testdata/policy/image-output"     // needs the Docker daemon
	cases := []struct {
		name, root, level string
		errors            []string
		warnings          int
	}{
		{name: "A privileged stage renders for a privileged tenant.", root: escape, level: podsecurity.Privileged},
		{name: "A privileged stage is refused at baseline.", root: escape, level: podsecurity.Baseline,
			errors: []string{`spec.pod.spec: violates PodSecurity "baseline": `, `privileged (container "main"`, "host namespaces", "hostPath volumes"}},
		{name: "A stage that asks for nothing is refused at restricted, which wants it locked down.", root: plain, level: podsecurity.Restricted,
			errors: []string{`Stage/build: spec.pod.spec: violates PodSecurity "restricted": allowPrivilegeEscalation != false`, "runAsNonRoot != true", "seccompProfile"}},
		{name: "An image build warns below privileged.", root: images, level: podsecurity.Baseline, warnings: 1},
		{name: "An image build does not warn at privileged.", root: images, level: podsecurity.Privileged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			target := Target{Tenant: "t", Cluster: DefaultCluster, PodSecurity: tc.level}
			res, err := Render(context.Background(), tc.root, target, Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Warnings).To(HaveLen(tc.warnings))
			if tc.errors == nil {
				g.Expect(res.Errors).To(BeEmpty())
				g.Expect(res.Objects).NotTo(BeEmpty())
				return
			}
			g.Expect(res.Objects).To(BeEmpty())
			for _, want := range tc.errors {
				g.Expect(res.Err()).To(MatchError(ContainSubstring(want)))
			}
		})
	}
}

// TestRender_cacheKnowsTheLevel: a Renderer that rendered a target at
// one level does not hand the same result out at another.
func TestRender_cacheKnowsTheLevel(t *testing.T) {
	g := NewWithT(t)
	r := NewRenderer()
	root := "testdata/policy/privileged-stage"
	res, err := r.Render(context.Background(), root, Target{Tenant: "t", Cluster: DefaultCluster, PodSecurity: podsecurity.Privileged}, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).To(BeEmpty())
	res, err = r.Render(context.Background(), root, Target{Tenant: "t", Cluster: DefaultCluster, PodSecurity: podsecurity.Baseline}, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors).NotTo(BeEmpty())
}

// TestRender_scheduling renders a stage that names its node, tolerates
// the control plane's taint and takes a system priority and a runtime
// class, for a Tenant that is not known (a review of Git alone), one
// without scheduling, and one that allows the toleration and the classes.
func TestRender_scheduling(t *testing.T) {
	root := "testdata/policy/stage-picks-its-node"
	nodeName := `tenants/t/base/stage.yaml: Stage/squat: spec.pod.spec.nodeName: "cp-1": a tenant's Pod may not name its node`
	toleration := `Stage/squat: spec.pod.spec.tolerations[0]: toleration "node-role.kubernetes.io/control-plane:NoSchedule" is not among the Tenant's spec.scheduling.tolerations (none)`
	class := `Stage/squat: spec.pod.spec.priorityClassName: "system-node-critical" is not among the Tenant's spec.scheduling.priorityClassNames (none)`
	runtime := `Stage/squat: spec.pod.spec.runtimeClassName: "runc" is not among the Tenant's spec.scheduling.runtimeClassNames (none)`
	allowing := &gyrev1alpha1.TenantScheduling{
		Tolerations:        []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists}},
		PriorityClassNames: []string{"system-node-critical"},
		RuntimeClassNames:  []string{"runc"},
	}
	for _, tc := range []struct {
		name   string
		sched  *gyrev1alpha1.TenantScheduling
		errors []string
	}{
		{"A review without the Tenant refuses only the node name.", nil, []string{nodeName}},
		{"A Tenant without scheduling refuses all four.", &gyrev1alpha1.TenantScheduling{}, []string{nodeName, class, runtime, toleration}},
		{"A Tenant that allows the toleration and the classes still refuses the node name.", allowing, []string{nodeName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			// One Renderer for all: its cache must tell the Tenants apart.
			res, err := schedulingRenderer.Render(context.Background(), root, Target{Tenant: "t", Cluster: DefaultCluster, Scheduling: tc.sched}, Options{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Objects).To(BeEmpty())
			g.Expect(res.Errors).To(HaveLen(len(tc.errors)))
			for i, want := range tc.errors {
				g.Expect(res.Errors[i].Error()).To(ContainSubstring(want))
			}
		})
	}
}

var schedulingRenderer = NewRenderer()

func TestTargetsForTenant_policy(t *testing.T) {
	cases := []struct {
		name     string
		spec     gyrev1alpha1.TenantSpec
		level    string
		clusters []string
	}{
		{name: "A tenant without clusters runs on the control cluster at its level.",
			spec:  gyrev1alpha1.TenantSpec{PodSecurity: "restricted"},
			level: "restricted", clusters: []string{""}},
		{name: "A tenant's targets may run on the execution clusters of all its clusters, each once.",
			spec: gyrev1alpha1.TenantSpec{Clusters: []gyrev1alpha1.TenantCluster{
				{Name: "prod", ExecutionClusterRef: &gyrev1alpha1.ObjectReference{Name: "eu-1"}},
				{Name: "staging"},
				{Name: "canary", ExecutionClusterRef: &gyrev1alpha1.ObjectReference{Name: "eu-1"}},
			}},
			clusters: []string{"", "eu-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tenant := &gyrev1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: tc.spec}
			targets := TargetsForTenant(tenant)
			g.Expect(targets).NotTo(BeEmpty())
			for _, target := range targets {
				g.Expect(target.PodSecurity).To(Equal(tc.level))
				g.Expect(target.ExecutionClusters).To(Equal(tc.clusters))
			}
		})
	}
}
