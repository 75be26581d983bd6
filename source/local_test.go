package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/gitserver"
)

func TestLocalCommit_checksOutARevisionNotTheWorkTree(t *testing.T) {
	g := NewWithT(t)
	r := gitserver.NewRepo(t, t.TempDir(), "app.git")
	r.WriteFile("a.yaml", "old\n")
	old := r.Commit("old")
	r.Tag("v1")
	r.WriteFile("a.yaml", "new\n")
	r.Commit("new")
	r.WriteFile("a.yaml", "uncommitted\n")
	cache := t.TempDir()

	tests := []struct {
		name, rev, wantRevision string
	}{
		{"A tag name appears in the revision.", "v1", "v1@sha1:" + old},
		{"A relative revision is a bare commit.", "HEAD~1", "sha1:" + old},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			art, err := LocalCommit{Repo: filepath.Join(r.Work, "."), Rev: tt.rev, CacheDir: cache}.Artifact(context.Background())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(art.Revision).To(Equal(tt.wantRevision))
			g.Expect(os.ReadFile(filepath.Join(art.Dir, "a.yaml"))).To(BeEquivalentTo("old\n"))
		})
	}

	_, err := LocalCommit{Repo: r.Work, Rev: "no-such-branch", CacheDir: cache}.Artifact(context.Background())
	g.Expect(ReasonOf(err)).To(Equal(RefNotFound))
}

func TestDir_digestsTheDirectoryInPlace(t *testing.T) {
	g := NewWithT(t)
	r := gitserver.NewRepo(t, t.TempDir(), "app.git")
	r.WriteFile("a.yaml", "a\n")
	r.Commit("a")
	art, err := Dir(r.Work).Artifact(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(art.Dir).To(Equal(r.Work))
	g.Expect(art.Revision).To(Equal(art.Digest))
	local, err := LocalCommit{Repo: r.Work, Rev: "HEAD", CacheDir: t.TempDir()}.Artifact(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(local.Digest).To(Equal(art.Digest), "a clean work tree and its commit digest alike")

	r.Symlink("out", "../outside")
	_, err = Dir(r.Work).Artifact(context.Background())
	g.Expect(ReasonOf(err)).To(Equal(SymlinkEscape))
}
