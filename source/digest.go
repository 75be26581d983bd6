package source

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Digest returns the tree digest of dir, "sha256:<hex>". It covers every
// regular file and symlink under dir, sorted by slash-separated path, with
// its Git mode (100644, 100755 or 120000) and its content (a symlink's
// content is its target, which is never followed). Directories count only
// through the files they hold, and .git is skipped, so a checkout and a
// plain copy of the same tree digest alike. Other file types are an error.
func Digest(dir string) (string, error) {
	type entry struct {
		path, mode string
	}
	var entries []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() == ".git" {
			// A worktree's .git file points at its repository.
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.Type() == fs.ModeSymlink:
			entries = append(entries, entry{rel, "120000"})
		case m.IsRegular() && m.Perm()&0o111 != 0:
			entries = append(entries, entry{rel, "100755"})
		case m.IsRegular():
			entries = append(entries, entry{rel, "100644"})
		default:
			return fmt.Errorf("digest %s: %s is neither a file nor a symlink", dir, rel)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	h := sha256.New()
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.path))
		if e.mode == "120000" {
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s %s %d\x00%s", e.mode, e.path, len(target), target)
			continue
		}
		if err := hashFile(h, e.mode, e.path, p); err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile writes one file's header and content into h. The length in the
// header keeps one file's bytes from running into the next's name.
func hashFile(h io.Writer, mode, rel, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s %s %d\x00", mode, rel, info.Size())
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if n != info.Size() {
		return fmt.Errorf("digest: %s changed while being read", rel)
	}
	return nil
}
