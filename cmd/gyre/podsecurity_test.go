package main

import (
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// podSecurityRepo has a privileged node-debugging stage (tenant ops), and
// a plain stage and an image build (tenant web).
const podSecurityRepo = "testdata/pod-security/repo"

func TestValidate_podSecurity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		golden string
		want   []string
	}{
		{name: "Without --pod-security the privileged stage is refused at baseline and the image build warns.",
			args: []string{"validate", podSecurityRepo}, code: 1, golden: "pod-security/want-baseline.txt"},
		{name: "The JSON output carries the errors and the warnings.",
			args: []string{"validate", "-o", "json", podSecurityRepo}, code: 1, golden: "pod-security/want-baseline.json"},
		{name: "At privileged the privileged stage is valid and the image build does not warn.",
			args: []string{"validate", "--pod-security", "privileged", podSecurityRepo}, code: 0, golden: "pod-security/want-privileged.txt"},
		{name: "At restricted a stage that asks for nothing is refused too.",
			args: []string{"validate", "--pod-security", "restricted", podSecurityRepo}, code: 1,
			want: []string{`tenants/web/pipeline.yaml: Stage/test: spec.pod.spec: violates PodSecurity "restricted": allowPrivilegeEscalation != false (container "main"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stdout, stderr, code := execute(t, tc.args...)
			g.Expect(stderr).To(BeEmpty())
			g.Expect(code).To(Equal(tc.code))
			if tc.golden != "" {
				golden(t, tc.golden, stdout)
			}
			for _, w := range tc.want {
				g.Expect(stdout).To(ContainSubstring(w))
			}
		})
	}
}

func TestValidate_warningsAloneLeaveTheRepositoryValid(t *testing.T) {
	g := NewWithT(t)
	stdout, stderr, code := execute(t, "validate", "-o", "json", exampleRepo)
	g.Expect(stderr).To(BeEmpty())
	g.Expect(code).To(Equal(0))
	var v validation
	g.Expect(json.Unmarshal([]byte(stdout), &v)).To(Succeed())
	g.Expect(v.Valid).To(BeTrue())
	g.Expect(v.Warnings).To(BeNumerically(">", 0), "the example builds images at baseline")
}

func TestBuild_printsWarningsOnStderr(t *testing.T) {
	g := NewWithT(t)
	stdout, stderr, code := execute(t, "build", "--tenant", "web", podSecurityRepo)
	g.Expect(code).To(Equal(0))
	g.Expect(stdout).To(ContainSubstring("name: image-build"))
	g.Expect(stderr).To(Equal("warning: tenants/web/pipeline.yaml: Stage/image-build: spec.pod.outputs.resources[0]: " +
		"stage image-build outputs image resource image: it needs a privileged Docker daemon, which tenants below podSecurity: privileged do not get; the run will fail\n"))

	stdout, stderr, code = execute(t, "build", "--tenant", "ops", "--pod-security", "privileged", podSecurityRepo)
	g.Expect(code).To(Equal(0))
	g.Expect(stderr).To(BeEmpty())
	g.Expect(stdout).To(ContainSubstring("privileged: true"))
}

func TestPodSecurityFlag_refusesAnUnknownLevel(t *testing.T) {
	for _, cmd := range []string{"validate", "build", "diff"} {
		t.Run("gyre "+cmd+" refuses --pod-security root.", func(t *testing.T) {
			g := NewWithT(t)
			args := []string{cmd, "--pod-security", "root", podSecurityRepo}
			if cmd == "diff" {
				args = append(args, "--base", "HEAD")
			}
			stdout, stderr, code := execute(t, args...)
			g.Expect(code).To(Equal(2))
			g.Expect(stdout).To(BeEmpty())
			g.Expect(stderr).To(Equal(`gyre: --pod-security must be restricted, baseline or privileged, not "root"` + "\n"))
		})
	}
}

// TestValidate_exampleWarnsOnlyAboutImageBuilds: the example renders at
// baseline, the default; only its image builds warn.
func TestValidate_exampleWarnsOnlyAboutImageBuilds(t *testing.T) {
	g := NewWithT(t)
	stdout, _, code := execute(t, "validate", exampleRepo)
	g.Expect(code).To(Equal(0))
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		g.Expect(l).To(MatchRegexp(`^warning: .*: Stage/[a-z-]+: spec\.pod\.outputs\.resources\[0\]: stage .* outputs image resource .*: it needs a privileged Docker daemon`))
	}
}

// TestValidate_tenants checks a stage for a tainted build pool against
// the Tenant objects of --tenants, which decide as the cluster's do.
func TestValidate_tenants(t *testing.T) {
	repo := "testdata/scheduling/repo"
	for _, tc := range []struct {
		name, tenants string
		code          int
		stdout        []string
		stderr        string
	}{
		{name: "Without --tenants the Tenant is not known, and only a node name would be refused.", code: 0},
		{name: "A Tenant that allows the toleration and the priority class makes the stage valid.", tenants: "allowed.yaml", code: 0},
		{name: "A Tenant without scheduling refuses both, each named.", tenants: "plain.yaml", code: 1, stdout: []string{
			`tenants/builds/pipeline.yaml: Stage/compile: spec.pod.spec.priorityClassName: "builds-low" is not among the Tenant's spec.scheduling.priorityClassNames (none)`,
			`tenants/builds/pipeline.yaml: Stage/compile: spec.pod.spec.tolerations[0]: toleration "dedicated=builds:NoSchedule" is not among the Tenant's spec.scheduling.tolerations (none)`,
		}},
		{name: "A file with something else than Tenants is refused with the document named.", tenants: "not-tenants.yaml", code: 2,
			stderr: "testdata/scheduling/not-tenants.yaml: document 2: is v1 ConfigMap, not a gyre.dev/v1alpha1 Tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			args := []string{"validate", repo}
			if tc.tenants != "" {
				args = append(args, "--tenants", "testdata/scheduling/"+tc.tenants)
			}
			stdout, stderr, code := execute(t, args...)
			g.Expect(code).To(Equal(tc.code), "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			g.Expect(strings.Split(strings.TrimSpace(stdout), "\n")).To(ContainElements(tc.stdout))
			if tc.stderr != "" {
				g.Expect(stderr).To(ContainSubstring(tc.stderr))
			}
		})
	}
}
