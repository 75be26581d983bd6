package render

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// DefaultMaxFileSize caps the size of any one file a render reads.
const DefaultMaxFileSize = 10 << 20

// errReadOnly is returned by every write to a confinedFS.
var errReadOnly = errors.New("the render file system is read-only")

// confinedFS is the file system kustomize sees during a render. It is the
// repository, read-only, with three guarantees kustomize does not give on
// its own: nothing outside the repository root is readable (lexically or
// through a symlink), no file over the size cap is read, and no YAML file
// with duplicate keys or an alias bomb reaches kustomize's parser. It
// also serves the few in-memory files of gyre's entry kustomization, and
// records which directories were read so that a render can be cached on
// exactly what it depended on.
//
// Refusals are recorded as violations as well as returned, because
// kustomize sometimes swallows an error and tries something else (a
// resource that is not a directory is retried as a file); the render
// reports the violations and discards kustomize's output.
type confinedFS struct {
	root     string            // absolute, symlinks resolved
	virtual  map[string][]byte // absolute path → content
	vdir     string            // the directory holding the virtual files
	maxSize  int64
	remoteOK bool // reads of kustomize's git clones are allowed
	// done ends reads when the render's deadline passes: kustomize takes
	// no context, so a timed-out build stops at its next read.
	done <-chan struct{}

	mu         sync.Mutex
	dirs       map[string]struct{} // relative to root, slash-separated
	violations []Error
	syntax     []Error // files read that are not valid YAML
	remoteUsed bool
	// resourceFiles are the files kustomizations list under resources,
	// absolute; see expandList.
	resourceFiles map[string]bool

	// files caches the YAML checks of the render's checkout, shared
	// with the Renderer's other renders; nil caches nothing.
	files *rootFiles
	// checks counts the files checked rather than served from files.
	checks *atomic.Int64

	// refs serves gyre's kustomize configuration at refsPath, chosen by
	// the words of refWords seen in the files read (see refChoice).
	refs     *refChoice
	refsPath string
	words    map[string]bool
	// realDirs maps directories to their paths with symlinks resolved;
	// see evalSymlinks.
	realDirs map[string]string
}

func newConfinedFS(root string, maxSize int64, remoteOK bool) (*confinedFS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxFileSize
	}
	// The entry kustomization lives beside the root, not inside it:
	// kustomize refuses to build a directory that contains the
	// kustomization building it, and a target may be the root itself.
	vdir := filepath.Join(filepath.Dir(abs), ".gyre-render-"+filepath.Base(abs))
	return &confinedFS{
		root:     abs,
		virtual:  map[string][]byte{},
		vdir:     vdir,
		maxSize:  maxSize,
		remoteOK: remoteOK,
		dirs:     map[string]struct{}{},
		refs:     &refChoice{},
		refsPath: filepath.Join(vdir, "gyre-config.yaml"),
		words:    map[string]bool{},
		realDirs: map[string]string{},
	}, nil
}

// rel returns p relative to the root, slash-separated, for messages.
func (f *confinedFS) rel(p string) string {
	r, err := filepath.Rel(f.root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

func (f *confinedFS) violate(file, msg string) error {
	e := Error{File: file, Message: msg}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		if v == e {
			return e
		}
	}
	f.violations = append(f.violations, e)
	return e
}

func (f *confinedFS) recordDir(abs string) {
	if !within(f.root, abs) {
		return
	}
	f.mu.Lock()
	f.dirs[f.rel(abs)] = struct{}{}
	f.mu.Unlock()
}

// Dirs returns the directories read so far, relative to the root, sorted.
func (f *confinedFS) Dirs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.dirs))
	for d := range f.dirs {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// noteSyntax records that a file read is not valid YAML. It is not a
// refusal: kustomize may read the file as data; see explain.
func (f *confinedFS) noteSyntax(file, msg string) {
	e := Error{File: file, Message: msg}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.syntax {
		if s == e {
			return
		}
	}
	f.syntax = append(f.syntax, e)
}

// Violations returns the refusals recorded so far.
func (f *confinedFS) Violations() []Error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Error(nil), f.violations...)
}

func within(root, p string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

// allowed reports whether a resolved absolute path may be read.
func (f *confinedFS) allowed(p string) bool {
	if within(f.root, p) {
		return true
	}
	if f.remoteOK && isKustomizeClone(p) {
		f.mu.Lock()
		f.remoteUsed = true
		f.mu.Unlock()
		return true
	}
	return false
}

// isKustomizeClone reports whether p is inside a temporary directory
// kustomize's git cloner made for a remote base.
func isKustomizeClone(p string) bool {
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = os.TempDir()
	}
	r, err := filepath.Rel(tmp, p)
	if err != nil || !filepath.IsLocal(r) {
		return false
	}
	first := strings.Split(filepath.ToSlash(r), "/")[0]
	return strings.HasPrefix(first, "kustomize-")
}

// resolve turns a path kustomize asks about into an absolute path with
// symlinks resolved, refusing (and recording) anything outside the
// repository. Nonexistent paths inside the repository resolve lexically
// and fail later with the usual not-exist error.
func (f *confinedFS) resolve(p string) (string, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(f.root, p)
	}
	p = filepath.Clean(p)
	if within(f.vdir, p) {
		return "", &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	if !f.allowed(p) {
		return "", f.violate(f.rel(p), "path is outside the repository")
	}
	resolved, err := f.evalSymlinks(p)
	if err != nil {
		return p, nil
	}
	if !f.allowed(resolved) {
		return "", f.violate(f.rel(p), "symlink resolves outside the repository")
	}
	return resolved, nil
}

// evalSymlinks is filepath.EvalSymlinks of the clean absolute path p,
// with the directories it resolved before remembered: a build asks about
// the same few directories hundreds of times, and resolving one costs a
// system call per path element. Remembering is as safe as resolving
// again: the path that comes back is checked against the root and opened
// the same way, and a directory swapped for a symlink after it was
// resolved is no more followed than one swapped between a resolution and
// the open that follows it.
func (f *confinedFS) evalSymlinks(p string) (string, error) {
	dir, base := filepath.Dir(p), filepath.Base(p)
	if dir == p {
		return filepath.EvalSymlinks(p)
	}
	f.mu.Lock()
	dirReal, ok := f.realDirs[dir]
	f.mu.Unlock()
	if !ok {
		var err error
		if dirReal, err = filepath.EvalSymlinks(dir); err != nil {
			return "", err
		}
		f.mu.Lock()
		f.realDirs[dir] = dirReal
		f.mu.Unlock()
	}
	full := filepath.Join(dirReal, base)
	fi, err := os.Lstat(full)
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return filepath.EvalSymlinks(full)
	}
	return full, nil
}

func (f *confinedFS) isVirtual(p string) bool {
	p = filepath.Clean(p)
	if p == f.vdir {
		return true
	}
	_, ok := f.virtual[p]
	return ok
}

// Create is refused: renders never write.
func (f *confinedFS) Create(string) (filesys.File, error) { return nil, errReadOnly }

// Mkdir is refused: renders never write.
func (f *confinedFS) Mkdir(string) error { return errReadOnly }

// MkdirAll is refused: renders never write.
func (f *confinedFS) MkdirAll(string) error { return errReadOnly }

// RemoveAll is refused: renders never write.
func (f *confinedFS) RemoveAll(string) error { return errReadOnly }

// WriteFile is refused: renders never write.
func (f *confinedFS) WriteFile(string, []byte) error { return errReadOnly }

// Open opens a confined file for reading.
func (f *confinedFS) Open(p string) (filesys.File, error) {
	if err := f.expired(); err != nil {
		return nil, err
	}
	if f.isVirtual(p) {
		return nil, fmt.Errorf("open %s: not supported for in-memory files", p)
	}
	resolved, err := f.resolve(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, f.violate(f.rel(resolved), "not a regular file")
	}
	if fi.Size() > f.maxSize {
		return nil, f.violate(f.rel(resolved), tooBig(fi.Size(), f.maxSize))
	}
	f.recordDir(filepath.Dir(resolved))
	return os.Open(resolved)
}

// IsDir reports whether p is a directory the render may read.
func (f *confinedFS) IsDir(p string) bool {
	if filepath.Clean(p) == f.vdir {
		return true
	}
	if f.isVirtual(p) {
		return false
	}
	resolved, err := f.resolveQuiet(p)
	if err != nil {
		return false
	}
	fi, err := os.Stat(resolved)
	return err == nil && fi.IsDir()
}

// resolveQuiet is resolve for probes (IsDir, Exists): a probe outside the
// repository just answers no, without recording a violation, because
// kustomize probes speculatively.
func (f *confinedFS) resolveQuiet(p string) (string, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(f.root, p)
	}
	p = filepath.Clean(p)
	if within(f.vdir, p) || !f.allowed(p) {
		return "", fs.ErrNotExist
	}
	resolved, err := f.evalSymlinks(p)
	if err != nil {
		return "", err
	}
	if !f.allowed(resolved) {
		return "", fs.ErrNotExist
	}
	return resolved, nil
}

// ReadDir lists a confined directory.
func (f *confinedFS) ReadDir(p string) ([]string, error) {
	if err := f.expired(); err != nil {
		return nil, err
	}
	if filepath.Clean(p) == f.vdir {
		var names []string
		for v := range f.virtual {
			names = append(names, filepath.Base(v))
		}
		sort.Strings(names)
		return names, nil
	}
	resolved, err := f.resolve(p)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(resolved)
	if err != nil {
		return nil, err
	}
	f.recordDir(resolved)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// CleanedAbs splits a confined path into a confirmed directory and a file
// name (empty when the path is a directory), as kustomize expects.
func (f *confinedFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(f.root, p)
	}
	p = filepath.Clean(p)
	if p == f.vdir {
		return filesys.ConfirmedDir(p), "", nil
	}
	if _, ok := f.virtual[p]; ok {
		return filesys.ConfirmedDir(filepath.Dir(p)), filepath.Base(p), nil
	}
	resolved, err := f.resolve(p)
	if err != nil {
		return "", "", err
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", "", err
	}
	if fi.IsDir() {
		f.recordDir(resolved)
		return filesys.ConfirmedDir(resolved), "", nil
	}
	f.recordDir(filepath.Dir(resolved))
	return filesys.ConfirmedDir(filepath.Dir(resolved)), filepath.Base(resolved), nil
}

// Exists reports whether p exists and may be read.
func (f *confinedFS) Exists(p string) bool {
	if f.isVirtual(p) {
		return true
	}
	resolved, err := f.resolveQuiet(p)
	if err != nil {
		return false
	}
	_, err = os.Stat(resolved)
	return err == nil
}

// Glob lists the confined paths matching pattern.
func (f *confinedFS) Glob(pattern string) ([]string, error) {
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		if resolved, err := f.resolveQuiet(m); err == nil {
			f.recordDir(filepath.Dir(resolved))
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ReadFile reads a confined file, refusing files over the size cap and
// YAML files with duplicate keys or alias bombs.
func (f *confinedFS) ReadFile(p string) ([]byte, error) {
	if err := f.expired(); err != nil {
		return nil, err
	}
	if data, ok := f.virtual[filepath.Clean(p)]; ok {
		if filepath.Clean(p) == f.refsPath {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.refs.config(func(w string) bool { return f.words[w] })
		}
		return data, nil
	}
	data, err := f.readFile(p)
	if err == nil {
		f.mu.Lock()
		wordsIn(data, refWords(), f.words)
		f.mu.Unlock()
	}
	return data, err
}

// readFile is ReadFile for the files of the repository.
func (f *confinedFS) readFile(p string) ([]byte, error) {
	resolved, err := f.resolve(p)
	if err != nil {
		return nil, err
	}
	// Stat before opening: opening a FIFO or a device could block or
	// never end.
	fi, err := os.Stat(resolved)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("read %s: is a directory", f.rel(resolved))
	}
	f.recordDir(filepath.Dir(resolved))
	if !fi.Mode().IsRegular() {
		return nil, f.violate(f.rel(resolved), "not a regular file")
	}
	if fi.Size() > f.maxSize {
		return nil, f.violate(f.rel(resolved), tooBig(fi.Size(), f.maxSize))
	}
	file, err := os.Open(resolved)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	// Read one byte past the cap: the file may grow after Stat.
	data, err := io.ReadAll(io.LimitReader(file, f.maxSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > f.maxSize {
		return nil, f.violate(f.rel(resolved), tooBig(int64(len(data)), f.maxSize))
	}
	if isYAML(resolved) || strings.EqualFold(filepath.Ext(resolved), ".json") || bytes.HasPrefix(data, []byte("apiVersion:")) {
		return f.checked(resolved, data)
	}
	return data, nil
}

// checked applies the YAML checks to a file read, and expands its YAML
// lists when a kustomization lists it under resources. The outcome comes
// from the render's file cache when these bytes were checked before.
func (f *confinedFS) checked(resolved string, data []byte) ([]byte, error) {
	key := fileKey{path: resolved, resource: f.isResourceFile(resolved)}
	var files *rootFiles
	if within(f.root, resolved) {
		files = f.files // a remote base's clone is read once
	}
	var sum [sha256.Size]byte
	if files != nil {
		sum = sha256.Sum256(data)
	}
	e := files.lookup(key, sum)
	if e == nil {
		e = checkFile(data, key.resource)
		e.sum = sum
		files.store(key, e)
		if f.checks != nil {
			f.checks.Add(1)
		}
	}
	if e.refused != "" {
		return nil, f.violate(f.rel(resolved), e.refused)
	}
	if e.syntax != "" {
		f.noteSyntax(f.rel(resolved), e.syntax)
	}
	if e.out != nil {
		// kustomize gets its own copy of what other renders share.
		return bytes.Clone(e.out), nil
	}
	return data, nil
}

// checkFile checks one content of a YAML file; see checkYAML and
// expandList.
func checkFile(data []byte, resource bool) *checkedFile {
	e := &checkedFile{}
	docs, syntax, refused := checkYAML(data)
	switch {
	case refused != nil:
		e.refused = refused.Error()
	case syntax != nil:
		e.syntax = syntax.Error() // kustomize reports it, or reads the file as data
	case resource:
		out, err := expandList(data, docs)
		if err != nil {
			e.refused = err.Error()
		} else if !bytes.Equal(out, data) {
			e.out = out
		}
	}
	return e
}

// Walk walks a confined directory tree; entries outside the repository
// are skipped.
func (f *confinedFS) Walk(p string, fn filepath.WalkFunc) error {
	resolved, err := f.resolve(p)
	if err != nil {
		return err
	}
	return filepath.Walk(resolved, func(path string, info fs.FileInfo, err error) error {
		if err == nil {
			if r, rerr := filepath.EvalSymlinks(path); rerr != nil || !f.allowed(r) {
				return nil
			}
			if info.IsDir() {
				f.recordDir(path)
			}
		}
		return fn(path, info, err)
	})
}

func tooBig(size, limit int64) string {
	return fmt.Sprintf("file is %d bytes, over the %d-byte limit", size, limit)
}

var _ filesys.FileSystem = (*confinedFS)(nil)
