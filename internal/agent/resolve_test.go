package agent

import (
	"archive/tar"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/gitserver"
)

// gitFixture is a repository served by git http-backend behind basic
// auth.
type gitFixture struct {
	repo *gitserver.Repo
	url  string
}

func newGitFixture(t *testing.T) *gitFixture {
	t.Helper()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "app.git")
	repo.WriteFile("main.go", "package main\n")
	repo.Commit("first")
	repo.AnnotatedTag("v1", "release 1")
	repo.Push()
	repo.Git("push", "-q", "origin", "v1")
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{Username: "alice", Password: "s3cret", AllowAnySHA1: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &gitFixture{repo: repo, url: srv.URL + "/app.git"}
}

// resolver returns a Git resolver of a resource directory with params.
func gitResolver(workdir, results string, params map[string]string) *Resolver {
	return &Resolver{Type: cyclonev1alpha1.GitResourceType, Workdir: workdir, Results: results,
		Getenv: func(k string) string { return params[k] }}
}

// head returns the commit checked out in dir, as git itself sees it.
func head(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse in %s: %v", dir, err)
	}
	return strings.TrimSpace(string(out))
}

func TestResolver_gitPull(t *testing.T) {
	ctx := context.Background()
	fx := newGitFixture(t)
	first := fx.repo.Head()
	params := map[string]string{"SCM_URL": fx.url, "SCM_REVISION": "main", "SCM_AUTH": "alice:s3cret"}

	t.Run("A pull checks out the revision into data/ and reports the commit.", func(t *testing.T) {
		g := NewWithT(t)
		work, results := t.TempDir(), t.TempDir()
		g.Expect(gitResolver(work, results, params).Pull(ctx)).To(Succeed())
		g.Expect(os.ReadFile(filepath.Join(work, "data/main.go"))).To(Equal([]byte("package main\n")))
		g.Expect(head(t, filepath.Join(work, "data"))).To(Equal(first))
		g.Expect(os.ReadFile(filepath.Join(results, convention.ResultFile))).To(Equal([]byte("LastCommitID:" + first + "\n")))
		entries, _ := os.ReadDir(work)
		g.Expect(entries).To(HaveLen(1), "no temporary directory is left behind")
		out, _ := exec.Command("git", "-C", filepath.Join(work, "data"), "remote", "get-url", "origin").Output()
		g.Expect(string(out)).NotTo(ContainSubstring("s3cret"), "the workload never sees the credentials")
	})
	t.Run("An annotated tag and a commit hash check out their commit.", func(t *testing.T) {
		g := NewWithT(t)
		for _, rev := range []string{"v1", "refs/tags/v1", first} {
			work := t.TempDir()
			p := map[string]string{"SCM_URL": fx.url, "SCM_REVISION": rev, "SCM_AUTH": "alice:s3cret"}
			g.Expect(gitResolver(work, "", p).Pull(ctx)).To(Succeed(), rev)
			g.Expect(head(t, filepath.Join(work, "data"))).To(Equal(first), rev)
		}
	})
	t.Run("Wrong credentials, an unknown revision and a merge revision fail with the reason.", func(t *testing.T) {
		g := NewWithT(t)
		p := map[string]string{"SCM_URL": fx.url, "SCM_REVISION": "main", "SCM_AUTH": "alice:wrong"}
		err := gitResolver(t.TempDir(), "", p).Pull(ctx)
		g.Expect(err).To(MatchError(ContainSubstring("list " + fx.url)))
		g.Expect(err.Error()).NotTo(ContainSubstring("wrong"), "no credential in an error")

		p = map[string]string{"SCM_URL": fx.url, "SCM_REVISION": "nope", "SCM_AUTH": "alice:s3cret"}
		g.Expect(gitResolver(t.TempDir(), "", p).Pull(ctx)).To(MatchError(ContainSubstring(`has no branch, tag or ref "nope"`)))

		p = map[string]string{"SCM_URL": fx.url, "SCM_REVISION": "feature:main"}
		g.Expect(gitResolver(t.TempDir(), "", p).Pull(ctx)).To(MatchError(ContainSubstring("asks to merge feature into main")))
	})

	// Later commits, for the tests of data that is already there.
	fx.repo.WriteFile("main.go", "package main // 2\n")
	second := fx.repo.Commit("second")
	fx.repo.Push()

	t.Run("A later stage of the same run reuses the data the first pulled.", func(t *testing.T) {
		g := NewWithT(t)
		work := t.TempDir()
		write(t, work, "data/.keep", "")
		g.Expect(os.RemoveAll(filepath.Join(work, "data"))).To(Succeed())
		g.Expect(gitResolver(work, "", params).Pull(ctx)).To(Succeed())
		write(t, work, "data/build.log", "built by stage one")
		g.Expect(gitResolver(work, "", params).Pull(ctx)).To(Succeed())
		g.Expect(filepath.Join(work, "data/build.log")).To(BeAnExistingFile(), "the run's later stages see the earlier stages' work")
	})
	t.Run("A persistent resource with IfNotExist is updated in place.", func(t *testing.T) {
		g := NewWithT(t)
		work := t.TempDir()
		p := map[string]string{"SCM_URL": fx.url, "SCM_REVISION": first, "SCM_AUTH": "alice:s3cret", convention.EnvPullPolicy: "IfNotExist"}
		g.Expect(gitResolver(work, "", p).Pull(ctx)).To(Succeed())
		write(t, work, "data/.cache/deps", "kept across runs")

		p["SCM_REVISION"] = "main"
		results := t.TempDir()
		g.Expect(gitResolver(work, results, p).Pull(ctx)).To(Succeed())
		g.Expect(head(t, filepath.Join(work, "data"))).To(Equal(second))
		g.Expect(os.ReadFile(filepath.Join(work, "data/main.go"))).To(Equal([]byte("package main // 2\n")))
		g.Expect(filepath.Join(work, "data/.cache/deps")).To(BeAnExistingFile(), "an incremental pull keeps what the runs left")
		g.Expect(os.ReadFile(filepath.Join(results, convention.ResultFile))).To(ContainSubstring(second))

		p["SCM_URL"] = strings.Replace(fx.url, "app.git", "other.git", 1)
		g.Expect(gitResolver(work, "", p).Pull(ctx)).To(MatchError(ContainSubstring("is not a clone of")))
	})
	t.Run("A persistent resource with Always is pulled afresh.", func(t *testing.T) {
		g := NewWithT(t)
		work := t.TempDir()
		p := map[string]string{"SCM_URL": fx.url, "SCM_REVISION": first, "SCM_AUTH": "alice:s3cret", convention.EnvPullPolicy: "Always"}
		g.Expect(gitResolver(work, "", p).Pull(ctx)).To(Succeed())
		write(t, work, "data/.cache/deps", "from the last run")

		p["SCM_REVISION"] = "main"
		g.Expect(gitResolver(work, "", p).Pull(ctx)).To(Succeed())
		g.Expect(head(t, filepath.Join(work, "data"))).To(Equal(second))
		g.Expect(filepath.Join(work, "data/.cache/deps")).NotTo(BeAnExistingFile())
		entries, _ := os.ReadDir(work)
		g.Expect(entries).To(HaveLen(1), "the old data is gone")

		p[convention.EnvPullPolicy] = "Sometimes"
		g.Expect(gitResolver(work, "", p).Pull(ctx)).To(MatchError(ContainSubstring(`PULL_POLICY "Sometimes" is not a pull policy`)))
	})
}

func TestResolver_httpPush(t *testing.T) {
	ctx := context.Background()
	type upload struct {
		path, tenant, filename string
		files                  map[string]string
	}
	uploads := make(chan upload, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, hdr, err := r.FormFile("archive")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u := upload{path: r.URL.Path, tenant: r.Header.Get("X-Tenant"), filename: hdr.Filename, files: map[string]string{}}
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(tr)
			u.files[h.Name] = string(b)
		}
		uploads <- u
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	params := map[string]string{
		"URL": srv.URL + "/upload/${WORKFLOWRUN_NAME}/${STAGE_NAME}", "METHOD": "POST", "HEADERS": "X-Tenant:shop",
		"FORM_FILE_KEY": "archive", "DATA_SUBDIR": "dist", convention.EnvRunName: "run1", convention.EnvStageName: "build",
	}
	resolver := func(work string) *Resolver {
		return &Resolver{Type: cyclonev1alpha1.HTTPResourceType, Workdir: work, Getenv: func(k string) string { return params[k] }}
	}

	t.Run("Once the workload succeeded, the data is sent as a tar in a form.", func(t *testing.T) {
		g := NewWithT(t)
		work := t.TempDir()
		write(t, work, "data/dist/app.jar", "jar")
		write(t, work, "data/dist/lib/dep.jar", "dep")
		write(t, work, "data/src/Main.java", "not sent")
		write(t, work, "notify/"+convention.NotifyOK, "")
		g.Expect(resolver(work).Push(ctx)).To(Succeed())
		g.Expect(uploads).To(Receive(Equal(upload{path: "/upload/run1/build", tenant: "shop", filename: "artifact.tar",
			files: map[string]string{"./app.jar": "jar", "./lib/dep.jar": "dep"}})))
	})
	t.Run("After a failed workload nothing is sent and the resolver does not fail the stage again.", func(t *testing.T) {
		g := NewWithT(t)
		work := t.TempDir()
		write(t, work, "data/dist/app.jar", "jar")
		write(t, work, "notify/"+convention.NotifyFailed, "workload failed: main exited with code 1")
		g.Expect(resolver(work).Push(ctx)).To(Succeed())
		g.Expect(uploads).NotTo(Receive())
	})
	t.Run("A refusal fails the push with the server's answer.", func(t *testing.T) {
		g := NewWithT(t)
		work := t.TempDir()
		write(t, work, "data/dist/app.jar", "jar")
		write(t, work, "notify/"+convention.NotifyOK, "")
		old := params["FORM_FILE_KEY"]
		params["FORM_FILE_KEY"] = "wrong"
		defer func() { params["FORM_FILE_KEY"] = old }()
		g.Expect(resolver(work).Push(ctx)).To(MatchError(ContainSubstring("status 400")))
	})
	t.Run("A type gyre does not resolve says what to do.", func(t *testing.T) {
		g := NewWithT(t)
		r := &Resolver{Type: "Image", Workdir: t.TempDir(), Getenv: func(string) string { return "" }}
		g.Expect(r.Pull(ctx)).To(MatchError(ContainSubstring(`no resolver for resource type "Image"`)))
	})
}

func TestResolver_generalKeepsItsData(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	work := t.TempDir()
	params := map[string]string{convention.EnvPullPolicy: "IfNotExist"}
	r := &Resolver{Type: "General", Workdir: work, Getenv: func(k string) string { return params[k] }}
	g.Expect(r.Pull(ctx)).To(Succeed())
	g.Expect(filepath.Join(work, "data")).To(BeADirectory())
	write(t, work, "data/mod/cache", "from run 1")
	g.Expect(r.Pull(ctx)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(work, "data/mod/cache"))).To(Equal([]byte("from run 1")), "a persistent cache outlives the run")
}

func TestReadResults_missingDirectory(t *testing.T) {
	g := NewWithT(t)
	kv, err := ReadResults(filepath.Join(t.TempDir(), "results"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kv).To(BeEmpty())
}
