package devenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gyreops/gyre/internal/fsutil"
)

// ensureRepo makes dir a Git repository holding a copy of example, with
// one commit on main, unless it already is one: the user's own commits
// there outlive restarts.
func ensureRepo(ctx context.Context, example, dir string) (created bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		return false, nil
	}
	if err := fsutil.CopyTree(example, dir); err != nil {
		return false, fmt.Errorf("copy the example repository: %w", err)
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "--all"},
		{"commit", "--quiet", "--message=Example pipelines"},
	} {
		if err := git(ctx, dir, args...); err != nil {
			return false, err
		}
	}
	return true, nil
}

// git runs one git command in dir with a fixed identity, so commits work
// on a machine without a git configuration.
func git(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=gyre dev", "GIT_AUTHOR_EMAIL=dev@gyre.invalid",
		"GIT_COMMITTER_NAME=gyre dev", "GIT_COMMITTER_EMAIL=dev@gyre.invalid",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git %s in %s: %w: %s", args[0], dir, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
