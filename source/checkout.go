package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ignoreMatcher parses .gitignore-syntax text. .git is always excluded
// and is not part of the matcher: no pattern can bring it back.
func ignoreMatcher(text string) gitignore.Matcher {
	var ps []gitignore.Pattern
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, nil))
	}
	return gitignore.NewMatcher(ps)
}

// writeTree writes the tree of commit into dir, which must exist and be
// empty, leaving out what m matches. Submodules (gitlinks) are left out:
// their content is in another repository. Each file is taken from b
// before its blob is read, so an oversized blob is never inflated.
func writeTree(ctx context.Context, commit *object.Commit, dir string, m gitignore.Matcher, b *budget) error {
	tree, err := commit.Tree()
	if err != nil {
		return fmt.Errorf("read tree of %s: %w", commit.Hash, err)
	}
	if err := writeDir(ctx, tree, dir, nil, m, b); err != nil {
		return err
	}
	return checkSymlinks(dir)
}

func writeDir(ctx context.Context, tree *object.Tree, root string, prefix []string, m gitignore.Matcher, b *budget) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, e := range tree.Entries {
		if e.Name == ".git" || strings.ContainsAny(e.Name, "/\x00") || e.Name == ".." || e.Name == "." {
			// Git itself refuses such names; a crafted tree may not.
			continue
		}
		p := append(append([]string(nil), prefix...), e.Name)
		isDir := e.Mode == filemode.Dir
		if m.Match(p, isDir) {
			continue
		}
		dst := filepath.Join(root, filepath.FromSlash(path.Join(p...)))
		switch e.Mode {
		case filemode.Dir:
			sub, err := tree.Tree(e.Name)
			if err != nil {
				return fmt.Errorf("read tree %s: %w", path.Join(p...), err)
			}
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			if err := writeDir(ctx, sub, root, p, m, b); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			perm := os.FileMode(0o644)
			if e.Mode == filemode.Executable {
				perm = 0o755
			}
			if err := writeBlob(tree, e, dst, perm, b, path.Join(p...)); err != nil {
				if isLimit(err) {
					return err
				}
				return fmt.Errorf("write %s: %w", path.Join(p...), err)
			}
		case filemode.Symlink:
			target, err := readBlob(tree, e, b, path.Join(p...))
			if isLimit(err) {
				return err
			}
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", path.Join(p...), err)
			}
			if err := os.Symlink(string(target), dst); err != nil {
				return err
			}
		case filemode.Submodule:
			continue
		default:
			return fmt.Errorf("%s has unsupported mode %s", path.Join(p...), e.Mode)
		}
	}
	return nil
}

func writeBlob(tree *object.Tree, e object.TreeEntry, dst string, perm os.FileMode, b *budget, name string) error {
	f, err := tree.TreeEntryFile(&e)
	if err != nil {
		return err
	}
	if err := b.file(name, f.Size); err != nil {
		return err
	}
	r, err := f.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// The umask may have dropped bits; the digest depends on them.
	return os.Chmod(dst, perm)
}

func readBlob(tree *object.Tree, e object.TreeEntry, b *budget, name string) ([]byte, error) {
	f, err := tree.TreeEntryFile(&e)
	if err != nil {
		return nil, err
	}
	if err := b.file(name, f.Size); err != nil {
		return nil, err
	}
	s, err := f.Contents()
	return []byte(s), err
}
