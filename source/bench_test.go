package source

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gyreops/gyre/internal/gitserver"
)

// bigRemote serves a repository of 5,000 commits and 500 tags over HTTP.
func bigRemote(b *testing.B) (*gitserver.HTTPServer, string) {
	b.Helper()
	root := b.TempDir()
	bare := filepath.Join(root, "big.git")
	if err := gitserver.InitBare(bare); err != nil {
		b.Fatal(err)
	}
	if err := gitserver.FastImport(bare, 5000, 500); err != nil {
		b.Fatal(err)
	}
	srv, err := gitserver.StartHTTP(root, gitserver.HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	return srv, srv.URL + "/big.git"
}

// BenchmarkGit_pollUnchanged measures a poll that finds nothing new: one
// listing of 501 refs, no fetch, for a branch and for a semver range over
// the 500 tags.
func BenchmarkGit_pollUnchanged(b *testing.B) {
	_, url := bigRemote(b)
	for _, ref := range []Ref{{Branch: "main"}, {SemVer: ">=0.1.0"}} {
		b.Run(ref.String(), func(b *testing.B) {
			ctx := context.Background()
			g := &Git{CacheDir: b.TempDir()}
			req := Request{Name: "big", URL: url, Ref: ref}
			last, _, err := g.Fetch(ctx, req, nil)
			if err != nil {
				b.Fatal(err)
			}
			before := g.Stats()
			for b.Loop() {
				if _, fetched, err := g.Fetch(ctx, req, &last); err != nil || fetched {
					b.Fatalf("fetched %t, err %v", fetched, err)
				}
			}
			if g.Stats().Fetches != before.Fetches {
				b.Fatal("an unchanged poll fetched")
			}
		})
	}
}

// BenchmarkFirstFetch compares a first Fetch of main (shallow, single
// ref, checked out and digested) with git clone --depth 1 of it.
func BenchmarkFirstFetch(b *testing.B) {
	_, url := bigRemote(b)
	b.Run("gyre", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			g := &Git{CacheDir: b.TempDir()}
			if _, _, err := g.Fetch(ctx, Request{URL: url}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("git-clone-depth-1", func(b *testing.B) {
		for b.Loop() {
			dir := filepath.Join(b.TempDir(), "clone")
			cmd := exec.Command("git", "clone", "-q", "--depth", "1", "--single-branch", "--branch", "main", url, dir)
			cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}
