package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/fsutil"
)

// gitRepo is a real Git repository made with the git CLI.
type gitRepo struct {
	t   *testing.T
	dir string
}

// newExampleGitRepo makes a Git repository whose branch main holds the
// example pipeline repository plus a hand-written Secret, as one commit.
func newExampleGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "pipelines")}
	if err := os.CopyFS(r.dir, os.DirFS(exampleRepo)); err != nil {
		t.Fatal(err)
	}
	r.write("tenants/sandbox/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: webhook\nstringData:\n  token: hunter2-before\n  url: https://hooks.example.com/sandbox\n")
	r.git("init", "-q", "-b", "main")
	r.commit("Example pipelines")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (r *gitRepo) commit(msg string) {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
}

func (r *gitRepo) write(rel, content string) {
	r.t.Helper()
	if err := fsutil.WriteFile(filepath.Join(r.dir, rel), []byte(content)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *gitRepo) edit(rel, old, new string) {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, rel))
	if err != nil {
		r.t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		r.t.Fatalf("%s does not contain %q", rel, old)
	}
	r.write(rel, strings.Replace(string(b), old, new, 1))
}

func (r *gitRepo) remove(rel string) {
	r.t.Helper()
	if err := os.Remove(filepath.Join(r.dir, rel)); err != nil {
		r.t.Fatal(err)
	}
}

// change makes a typical pull request on a branch: a schedule moved in
// the shared base, a release run removed, a trigger added to one
// cluster, a Secret value rotated.
func (r *gitRepo) change() {
	r.t.Helper()
	r.git("checkout", "-q", "-b", "change")
	r.edit("base/triggers.yaml", "schedule: 0 2 * * *", "schedule: 0 4 * * *")
	r.remove("tenants/shop/prod/release-run.yaml")
	r.edit("tenants/shop/prod/kustomization.yaml", "- release-run.yaml\n", "")
	r.write("tenants/analytics/gpu/weekly.yaml", "apiVersion: cyclone.dev/v1alpha1\nkind: WorkflowTrigger\nmetadata:\n  name: weekly\nspec:\n  type: Cron\n  cron:\n    schedule: 0 6 * * 1\n  workflowRef:\n    name: etl\n")
	r.edit("tenants/analytics/gpu/kustomization.yaml", "- ../base\n", "- ../base\n- weekly.yaml\n")
	r.edit("tenants/sandbox/secret.yaml", "hunter2-before", "hunter2-after")
	r.commit("Move the nightly build, drop the release run, rotate the sandbox token")
}

func TestDiff(t *testing.T) {
	r := newExampleGitRepo(t)
	r.change()
	for _, tc := range []struct{ output, golden string }{
		{"text", "diff/want.txt"},
		{"markdown", "diff/want.md"},
		{"json", "diff/want.json"},
	} {
		t.Run("The "+tc.output+" output shows every change.", func(t *testing.T) {
			g := NewWithT(t)
			stdout, stderr, code := execute(t, "diff", "--base", "main", "--head", "change", "--output", tc.output, r.dir)
			g.Expect(stderr).To(BeEmpty())
			g.Expect(code).To(Equal(1), "changes")
			for _, secret := range []string{"hunter2", base64.StdEncoding.EncodeToString([]byte("hunter2-before")), "not-a-real-token", base64.StdEncoding.EncodeToString([]byte("not-a-real-token"))} {
				g.Expect(stdout).NotTo(ContainSubstring(secret), "Secret values are never printed")
			}
			golden(t, tc.golden, stdout)
		})
	}
}

func TestDiff_json(t *testing.T) {
	g := NewWithT(t)
	r := newExampleGitRepo(t)
	r.change()
	stdout, _, code := execute(t, "diff", "--base", "main", "--head", "change", "-o", "json", r.dir)
	g.Expect(code).To(Equal(1))
	var d repoDiff
	g.Expect(json.Unmarshal([]byte(stdout), &d)).To(Succeed())
	g.Expect(d.Changed).To(BeTrue())
	byTarget := map[string]targetDiff{}
	for _, td := range d.Targets {
		byTarget[td.name()] = td
	}
	g.Expect(byTarget).To(HaveKey("analytics/gpu"))
	g.Expect(byTarget["analytics/gpu"].Added).To(ConsistOf(HaveField("ID", "WorkflowTrigger/weekly-gpu")))
	g.Expect(byTarget["shop/prod"].Removed).To(ConsistOf(HaveField("ID", "WorkflowRun/release-1-8-2-prod")))
	g.Expect(byTarget["sandbox/default"].Changed).To(ConsistOf(HaveField("ID", "Secret/webhook")))
	secret := byTarget["sandbox/default"].Changed[0].Diff
	g.Expect(secret).To(ContainSubstring("-  token: '" + maskBefore + "'"))
	g.Expect(secret).To(ContainSubstring("+  token: '" + maskAfter + "'"))
	g.Expect(secret).NotTo(ContainSubstring("url: '*** (before)'"), "an unchanged value shows as unchanged")
	g.Expect(d.Unchanged).To(Equal(3), "analytics/batch is untouched; payments/us and shop/staging override the schedule")
}

func TestDiff_workingTree(t *testing.T) {
	g := NewWithT(t)
	r := newExampleGitRepo(t)
	stdout, _, code := execute(t, "diff", "--base", "main", r.dir)
	g.Expect(code).To(Equal(0), "a clean working tree changes nothing")
	g.Expect(stdout).To(ContainSubstring("No changes to any of the 7 targets."))

	r.edit("tenants/shop/staging/nightly.yaml", "30 3 * * 1-5", "45 3 * * 1-5")
	stdout, _, code = execute(t, "diff", "--base", "main", r.dir)
	g.Expect(code).To(Equal(1))
	g.Expect(stdout).To(ContainSubstring("gyre diff main..working tree"))
	g.Expect(stdout).To(ContainSubstring("shop/staging: 0 added, 0 removed, 1 changed"))
	g.Expect(stdout).To(ContainSubstring("+    schedule: 45 3 * * 1-5"))
}

func TestDiff_subdirectoryOfARepository(t *testing.T) {
	g := NewWithT(t)
	root := filepath.Join(t.TempDir(), "monorepo")
	r := &gitRepo{t: t, dir: root}
	g.Expect(os.CopyFS(filepath.Join(root, "deploy", "pipelines"), os.DirFS(exampleRepo))).To(Succeed())
	r.write("README.md", "a monorepo\n")
	r.git("init", "-q", "-b", "main")
	r.commit("Pipelines under deploy/")
	r.edit("deploy/pipelines/tenants/sandbox/pipeline.yaml", "busybox:1.37", "busybox:1.38")
	stdout, _, code := execute(t, "diff", "--base", "main", filepath.Join(root, "deploy", "pipelines"))
	g.Expect(code).To(Equal(1))
	g.Expect(stdout).To(ContainSubstring("+        image: busybox:1.38"))
}

func TestDiff_headThatDoesNotRenderIsAnError(t *testing.T) {
	g := NewWithT(t)
	r := newExampleGitRepo(t)
	r.edit("base/workflow.yaml", "depends: [checkout]\n    timeout", "depends: [chekout]\n    timeout")
	stdout, stderr, code := execute(t, "diff", "--base", "main", r.dir)
	g.Expect(code).To(Equal(2))
	g.Expect(stdout).To(BeEmpty())
	g.Expect(stderr).To(ContainSubstring(`base/workflow.yaml: Workflow/ci-prod: spec.stages[1].depends[0]: stage "chekout" is not in this workflow`))
}

func TestDiff_needsABase(t *testing.T) {
	g := NewWithT(t)
	_, stderr, code := execute(t, "diff", exampleRepo)
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(ContainSubstring("--base or --live is required"))
}
