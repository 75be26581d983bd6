package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// DefaultKeep is how many artifacts per name stay on disk when Git.Keep is
// zero: the current one and the one before, which a render that started
// before the switch may still be reading.
const DefaultKeep = 2

// tmpPrefix marks checkouts still being written; they are never artifacts.
const tmpPrefix = ".tmp-"

// Store lays out artifact directories under a root:
// <root>/<name>/<commit> when nothing is ignored, and
// <root>/<name>/<commit>-<hash of ignore> otherwise, so a changed Ignore
// never reuses a checkout made without it. A directory that exists is
// complete: it appears by rename.
type Store struct {
	// Root holds one directory per name; <os.TempDir()>/gyre-artifacts
	// when empty, never the working directory.
	Root string
}

func (s Store) root() string {
	if s.Root == "" {
		return filepath.Join(os.TempDir(), "gyre-artifacts")
	}
	return s.Root
}

// Dir returns the artifact directory of commit for name under ignore.
func (s Store) Dir(name, commit, ignore string) string {
	leaf := commit
	if strings.TrimSpace(ignore) != "" {
		sum := sha256.Sum256([]byte(ignore))
		leaf += "-" + hex.EncodeToString(sum[:6])
	}
	return filepath.Join(s.root(), SafeName(name), leaf)
}

// Remove deletes every artifact of name, for a consumer that is gone.
func (s Store) Remove(name string) error {
	return os.RemoveAll(filepath.Join(s.root(), SafeName(name)))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// SafeName turns a name into one directory name: path separators and
// other unusual characters become '_', and a leading dot is dropped, so a
// name can neither climb out of the store nor hide.
func SafeName(name string) string {
	s := unsafeChars.ReplaceAllString(name, "_")
	s = strings.TrimLeft(s, ".")
	if s == "" {
		s = "_"
	}
	return s
}

// nameForURL derives a stable directory name from a remote URL: readable
// host and path, plus a short hash of the credential-free URL so two
// remotes never share a name.
func nameForURL(raw string) string {
	clean := raw
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		u.User = nil
		clean = u.String()
	}
	sum := sha256.Sum256([]byte(clean))
	readable := clean
	if i := strings.Index(readable, "://"); i >= 0 {
		readable = readable[i+3:]
	}
	if len(readable) > 60 {
		readable = readable[len(readable)-60:]
	}
	return SafeName(readable) + "-" + hex.EncodeToString(sum[:4])
}

// publish renames the finished checkout tmp to dir. If dir already exists
// another writer finished the same content first; tmp is dropped.
func publish(tmp, dir string, now time.Time) error {
	// The modification time orders artifacts for pruning.
	if err := os.Chtimes(tmp, now, now); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			return os.RemoveAll(tmp)
		}
		return err
	}
	return nil
}

// prune keeps the newest keep artifacts in parent and always keep
// current; it also removes checkouts left half-written by a crash. The
// caller holds the name's lock, so no other writer is using parent.
func prune(parent, current string, keep int) error {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	type artifact struct {
		path string
		mod  time.Time
	}
	var arts []artifact
	var errs []error
	for _, e := range entries {
		p := filepath.Join(parent, e.Name())
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			errs = append(errs, os.RemoveAll(p))
			continue
		}
		if !e.IsDir() || p == current {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		arts = append(arts, artifact{p, info.ModTime()})
	}
	sort.Slice(arts, func(i, j int) bool {
		if !arts[i].mod.Equal(arts[j].mod) {
			return arts[i].mod.After(arts[j].mod)
		}
		return arts[i].path > arts[j].path
	})
	for i, a := range arts {
		if i+1 >= keep { // +1: current counts
			errs = append(errs, os.RemoveAll(a.path))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune %s: %w", parent, err)
	}
	return nil
}

// touch marks dir as used now, so pruning keeps an artifact that became
// current again (say, after a revert pushed with --force).
func touch(dir string, now time.Time) error {
	return os.Chtimes(dir, now, now)
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}
