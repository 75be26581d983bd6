package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxLinkHops = 40

// checkSymlinks walks root and fails with SymlinkEscape on the first
// symlink whose target, resolved the way the kernel would (following
// links within root), lies outside root or is absolute. Links to missing
// paths inside root are allowed: they cannot leak anything.
//
// A lexical check alone is not enough: with d -> ".", the target
// "d/x/../.." looks like "." but the kernel resolves it to root's parent.
func checkSymlinks(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := resolveInRoot(root, rel); err != nil {
			target, _ := os.Readlink(p)
			return &Error{Reason: SymlinkEscape, Err: fmt.Errorf("symlink %s -> %s: %w", rel, target, err)}
		}
		return nil
	})
}

var errEscape = errors.New("points outside the checkout")

// resolveInRoot resolves the slash path rel (relative to root) component
// by component, following symlinks, and fails if it ever leaves root.
func resolveInRoot(root, rel string) error {
	var stack []string // resolved components below root
	pending := strings.Split(rel, "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return errEscape
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cur := filepath.Join(root, filepath.FromSlash(path.Join(append(stack, c)...)))
		info, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			// The rest cannot be followed; judge it lexically.
			stack = append(stack, c)
			for _, r := range pending {
				switch r {
				case "", ".":
				case "..":
					if len(stack) == 0 {
						return errEscape
					}
					stack = stack[:len(stack)-1]
				default:
					stack = append(stack, r)
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			stack = append(stack, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return err
		}
		if path.IsAbs(target) || filepath.IsAbs(target) {
			return errEscape
		}
		// The target replaces the link, relative to the link's directory.
		pending = append(strings.Split(filepath.ToSlash(target), "/"), pending...)
	}
	return nil
}
