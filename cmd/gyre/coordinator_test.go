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
