package gitserver

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Repo is a bare repository under a server root plus a working clone to
// commit from. Its methods fail the test on error. Commit times start at
// a fixed date and advance a minute per commit, so histories are
// reproducible.
type Repo struct {
	// Bare is the bare repository's path; servers serve it.
	Bare string
	// Work is the working clone's path.
	Work string

	t    testing.TB
	when time.Time
}

// Epoch is the commit time of a Repo's first commit.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewRepo creates <root>/<name> as an empty bare repository whose default
// branch is main, and a working clone of it in a test directory.
func NewRepo(t testing.TB, root, name string) *Repo {
	t.Helper()
	r := &Repo{Bare: filepath.Join(root, name), Work: t.TempDir(), t: t, when: Epoch}
	if err := InitBare(r.Bare); err != nil {
		t.Fatal(err)
	}
	r.Git("init", "-q", "-b", "main", ".")
	r.Git("remote", "add", "origin", r.Bare)
	return r
}

// InitBare creates an empty bare repository at dir with default branch
// main, ready to be pushed to over HTTP and SSH.
func InitBare(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_, err := run(dir, nil, "init", "-q", "--bare", "-b", "main", ".")
	return err
}

// Git runs git in the working clone and returns its trimmed stdout.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	date := r.when.Format(time.RFC3339)
	out, err := run(r.Work, []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// WriteFile writes content to path (slash-separated, inside the clone),
// creating directories.
func (r *Repo) WriteFile(path, content string) {
	r.t.Helper()
	p := filepath.Join(r.Work, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// CopyDir writes every file under dir into the work tree, at the same
// path relative to dir.
func (r *Repo) CopyDir(dir string) {
	r.t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		r.WriteFile(filepath.ToSlash(rel), string(data))
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

// Symlink creates path as a symlink to target.
func (r *Repo) Symlink(path, target string) {
	r.t.Helper()
	p := filepath.Join(r.Work, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		r.t.Fatal(err)
	}
}

// Remove deletes path from the clone.
func (r *Repo) Remove(path string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.Work, filepath.FromSlash(path))); err != nil {
		r.t.Fatal(err)
	}
}

// SetTime sets the time of the next commit; later ones follow it a
// minute apart.
func (r *Repo) SetTime(t time.Time) { r.when = t }

// Commit stages everything and commits it, returning the commit's SHA-1.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
	r.when = r.when.Add(time.Minute)
	return r.Head()
}

// Head returns the SHA-1 of HEAD.
func (r *Repo) Head() string {
	r.t.Helper()
	return r.Git("rev-parse", "HEAD")
}

// Tag makes a lightweight tag at HEAD.
func (r *Repo) Tag(name string) {
	r.t.Helper()
	r.Git("tag", name)
}

// AnnotatedTag makes an annotated tag at HEAD and returns the tag
// object's SHA-1 (not the commit's).
func (r *Repo) AnnotatedTag(name, msg string) string {
	r.t.Helper()
	r.Git("tag", "-a", name, "-m", msg)
	return r.Git("rev-parse", "refs/tags/"+name)
}

// Push pushes every branch and tag.
func (r *Repo) Push() {
	r.t.Helper()
	r.Git("push", "-q", "origin", "--all")
	r.Git("push", "-q", "origin", "--tags")
}

// ForcePush pushes every branch and tag, rewriting the remote's history.
func (r *Repo) ForcePush() {
	r.t.Helper()
	r.Git("push", "-q", "--force", "origin", "--all")
	r.Git("push", "-q", "--force", "origin", "--tags")
}

// FastImport writes a linear history of commits to branch main of the
// bare repository, each changing one of a few files, with a lightweight
// tag v0.<i>.0 on every (commits/tags)-th commit. git fast-import makes
// thousands of commits in well under a second.
func FastImport(bare string, commits, tags int) error {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	every := commits
	if tags > 0 {
		every = max(commits/tags, 1)
	}
	tagged := 0
	for i := 1; i <= commits; i++ {
		when := Epoch.Add(time.Duration(i) * time.Minute).Unix()
		content := fmt.Sprintf("commit %d\n", i)
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\n", i)
		fmt.Fprintf(w, "committer Gyre Test <test@gyre.dev> %d +0000\n", when)
		fmt.Fprintf(w, "data %d\ncommit %d\n", len(fmt.Sprintf("commit %d\n", i)), i)
		if i > 1 {
			fmt.Fprintf(w, "from :%d\n", i-1)
		}
		fmt.Fprintf(w, "M 100644 inline dir%d/file%d.yaml\ndata %d\n%s\n", i%10, i%50, len(content), content)
		if i%every == 0 && tagged < tags {
			fmt.Fprintf(w, "reset refs/tags/v0.%d.0\nfrom :%d\n\n", tagged, i)
			tagged++
		}
	}
	w.WriteString("done\n")
	if err := w.Flush(); err != nil {
		return err
	}
	cmd := exec.Command("git", "fast-import", "--quiet", "--done")
	cmd.Dir = bare
	cmd.Env = gitEnv(nil)
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git fast-import: %w: %s", err, out)
	}
	return nil
}

// gitEnv isolates git from the user's and system's configuration.
func gitEnv(extra []string) []string {
	env := append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Gyre Test", "GIT_AUTHOR_EMAIL=test@gyre.dev",
		"GIT_COMMITTER_NAME=Gyre Test", "GIT_COMMITTER_EMAIL=test@gyre.dev",
		"GIT_TERMINAL_PROMPT=0",
	)
	return append(env, extra...)
}

func run(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}
