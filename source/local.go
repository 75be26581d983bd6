package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Source yields an artifact. Remote polling, a local directory and a
// commit of a local clone all satisfy it, so a renderer does not care
// where the files come from.
type Source interface {
	// Artifact returns the files to use.
	Artifact(ctx context.Context) (Artifact, error)
}

// Dir is a local directory used as it is: nothing is copied or ignored
// but .git. Its Revision is its digest, as a directory has no commit.
type Dir string

// Artifact digests the directory after checking that no symlink in it
// leads outside.
func (d Dir) Artifact(ctx context.Context) (Artifact, error) {
	abs, err := filepath.Abs(string(d))
	if err != nil {
		return Artifact{}, err
	}
	if !isDir(abs) {
		return Artifact{}, fmt.Errorf("source directory %s does not exist", abs)
	}
	if err := checkSymlinks(abs); err != nil {
		return Artifact{}, err
	}
	digest, err := Digest(abs)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Revision: digest, Dir: abs, Digest: digest}, nil
}

// LocalCommit is a revision of a local repository checked out into a
// cache, as `gyre diff --base REV` needs: the files of REV, not of the
// working tree.
type LocalCommit struct {
	// Repo is the repository's work tree or any directory inside it, or
	// a bare repository.
	Repo string
	// Rev is anything git rev-parse takes that names a commit: a branch,
	// a tag, HEAD~2, a (short) hash.
	Rev string
	// CacheDir receives the checkout under Store layout with the name
	// "local"; a fresh temporary directory when empty, which the caller
	// removes.
	CacheDir string
	// Ignore lists paths, in .gitignore syntax, left out.
	Ignore string
}

// Artifact checks Rev out, or reuses the checkout already in CacheDir.
// Its Revision is "<Rev>@sha1:<commit>" when Rev is a branch or tag name,
// else "sha1:<commit>".
func (l LocalCommit) Artifact(ctx context.Context) (Artifact, error) {
	repo, err := git.PlainOpenWithOptions(l.Repo, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return Artifact{}, fmt.Errorf("open repository %s: %w", l.Repo, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(l.Rev))
	if err != nil {
		return Artifact{}, &Error{Reason: RefNotFound, Err: fmt.Errorf("revision %q in %s: %w", l.Rev, l.Repo, err)}
	}
	commit, err := repo.CommitObject(*h)
	if err != nil {
		return Artifact{}, &Error{Reason: RefNotFound, Err: fmt.Errorf("revision %q in %s is not a commit: %w", l.Rev, l.Repo, err)}
	}
	name := ""
	for _, n := range []plumbing.ReferenceName{plumbing.NewBranchReferenceName(l.Rev), plumbing.NewTagReferenceName(l.Rev)} {
		if _, err := repo.Reference(n, false); err == nil {
			name = l.Rev
			break
		}
	}
	cache := l.CacheDir
	if cache == "" {
		if cache, err = os.MkdirTemp("", "gyre-local-"); err != nil {
			return Artifact{}, err
		}
	}
	g := &Git{CacheDir: cache}
	dir := g.Store().Dir("local", h.String(), l.Ignore)
	art := Artifact{Revision: Revision(name, h.String()), Commit: h.String(), Dir: dir}
	if !isDir(dir) {
		art.Digest, err = g.checkout(ctx, commit, dir, l.Ignore, Limits{}.withDefaults())
	} else {
		art.Digest, err = Digest(dir)
	}
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return Artifact{}, se
		}
		return Artifact{}, fmt.Errorf("check out %s: %w", l.Rev, err)
	}
	return art, nil
}

// Remote is a ref of a remote repository as a Source: each Artifact
// call polls it through Git, fetching only when the ref moved since the
// previous call.
type Remote struct {
	// Git does the listing, fetching and caching.
	Git *Git
	// Request names the remote and the ref.
	Request Request

	last *Artifact
}

// Artifact returns the checkout of the ref's current commit.
func (r *Remote) Artifact(ctx context.Context) (Artifact, error) {
	art, _, err := r.Git.Fetch(ctx, r.Request, r.last)
	if err != nil {
		return Artifact{}, err
	}
	r.last = &art
	return art, nil
}

// The three kinds of source.
var (
	_ Source = Dir("")
	_ Source = LocalCommit{}
	_ Source = (*Remote)(nil)
)
