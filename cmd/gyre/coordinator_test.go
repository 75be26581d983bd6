package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/gitserver"
)

func TestResolve_gitPullFromTheCommandLine(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "app.git")
	repo.WriteFile("README", "hello\n")
	commit := repo.Commit("first")
	repo.Push()
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	defer srv.Close()

	t.Setenv("SCM_URL", srv.URL+"/app.git")
	t.Setenv("SCM_REVISION", "main")
	work, results := t.TempDir(), t.TempDir()
	g.Expect(run(context.Background(), []string{"resolve", "Git", "pull", "--workdir", work, "--results", results})).To(Equal(0))
	g.Expect(os.ReadFile(filepath.Join(work, "data", "README"))).To(Equal([]byte("hello\n")))
	g.Expect(os.ReadFile(filepath.Join(results, "__result__"))).To(Equal([]byte("LastCommitID:" + commit + "\n")))

	g.Expect(run(context.Background(), []string{"resolve", "Git", "fetch", "--workdir", work})).To(Equal(2), "an unknown operation is an error")
}

func TestCollect(t *testing.T) {
	g := NewWithT(t)
	work, staging := t.TempDir(), t.TempDir()
	out := filepath.Join(work, "coverage.out")
	_, stderr, code := execute(t, "collect", "--staging", staging, "--artifact", "coverage="+out, "--", "/bin/sh", "-c", "echo covered > "+out)
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(os.ReadFile(filepath.Join(staging, "coverage", "coverage.out"))).To(Equal([]byte("covered\n")))

	_, _, code = execute(t, "collect", "--staging", staging, "--", "/bin/sh", "-c", "exit 4")
	g.Expect(code).To(Equal(4), "the container ends as the workload did")

	_, stderr, code = execute(t, "collect", "--artifact", "coverage", "--", "true")
	g.Expect(code).To(Equal(2))
	g.Expect(stderr).To(Equal("gyre: --artifact \"coverage\": want NAME=PATH\n"))
}

func TestInstallSelf(t *testing.T) {
	g := NewWithT(t)
	dst := filepath.Join(t.TempDir(), "tools", "gyre")
	_, stderr, code := execute(t, "install-self", dst)
	g.Expect(code).To(Equal(0), stderr)
	info, err := os.Stat(dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o755)))
	self, err := os.Executable()
	g.Expect(err).NotTo(HaveOccurred())
	want, err := os.Stat(self)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Size()).To(Equal(want.Size()))
}
