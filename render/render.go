package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Options tune a render. The zero value is the safe default.
type Options struct {
	// Revision is stamped on every object as the gyre.dev/revision
	// annotation, such as "main@sha1:3f2a…"; nothing is stamped when empty.
	Revision string
	// AllowRemoteBases lets kustomizations load remote bases and files.
	AllowRemoteBases bool
	// AllowedKinds a target may contain; DefaultAllowedKinds when empty.
	AllowedKinds []metav1.GroupKind
	// MaxFileSize caps the size of any file read; DefaultMaxFileSize when
	// zero.
	MaxFileSize int64
	// Schemas validates objects; DefaultSchemas when nil.
	Schemas *Schemas
	// Limits cap the target's render; zero fields take the defaults.
	Limits Limits
}

// fingerprint identifies the options that shape a render's content; the
// revision is stamped after the cache and is not part of it.
func (o Options) fingerprint() string {
	kinds := make([]string, len(o.AllowedKinds))
	for i, gk := range o.AllowedKinds {
		kinds[i] = gk.Group + "/" + gk.Kind
	}
	sort.Strings(kinds)
	l := o.Limits.withDefaults()
	return fmt.Sprintf("remote=%t kinds=%s max=%d schemas=%p objects=%d bytes=%d", o.AllowRemoteBases, strings.Join(kinds, ","), o.MaxFileSize, o.Schemas, l.MaxObjects, l.MaxBytes)
}

// Render renders one target of the repository checked out at root,
// without a cache. See Renderer.Render.
func Render(ctx context.Context, root string, t Target, opts Options) (*Result, error) {
	return (&Renderer{}).Render(ctx, root, t, opts)
}

// Renderer renders targets and remembers each target's last render, so
// that a target whose files did not change is not rebuilt when others
// did, and what gyre's checks made of each file of a checkout, so that a
// base shared by many targets is checked once; see fileCache. It is safe
// for concurrent use.
type Renderer struct {
	mu    sync.Mutex
	cache map[cacheKey]*cacheEntry
	files *fileCache
	// builds counts renders that ran kustomize, checks the files whose
	// YAML was checked rather than found in files; for tests and metrics.
	builds, checks atomic.Int64
}

// NewRenderer returns a Renderer with empty caches.
func NewRenderer() *Renderer {
	return &Renderer{cache: map[cacheKey]*cacheEntry{}, files: newFileCache(DefaultFileCacheSize)}
}

// cacheKey is a target and its options in comparable form: Target holds
// a slice.
type cacheKey struct {
	target  string
	options string
}

func keyOf(t Target, opts Options) cacheKey {
	// encoding/json writes map keys sorted, so equal rules give equal keys.
	sched, _ := json.Marshal(t.Scheduling)
	return cacheKey{
		target:  fmt.Sprintf("%s|%s|%s|%s|%s|%q|%s", t.Tenant, t.Cluster, t.TenantDir, t.Path, t.level(), t.ExecutionClusters, sched),
		options: opts.fingerprint(),
	}
}

// cacheEntry is a target's last render before the revision stamp, with
// the directories it read and their digest. When those directories hash
// the same again, the render would read the same bytes and produce the
// same result: the closure includes every kustomization that decided what
// else to read.
type cacheEntry struct {
	dir    string
	dirs   []string
	digest string
	result *compactResult
}

// Render renders target t of the repository checked out at root: it
// builds the target's overlay with kustomize, enforces tenancy, stamps the
// objects and validates them. Problems with the repository's content are
// returned in Result.Errors, all of them, and then Result.Objects is
// empty; the error is for failures to render at all (a missing root, a
// cancelled context).
func (r *Renderer) Render(ctx context.Context, root string, t Target, opts Options) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("render %s: %w", t, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("render %s: %s is not a directory", t, root)
	}
	if opts.Schemas == nil {
		s, err := DefaultSchemas()
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", t, err)
		}
		opts.Schemas = s
	}
	dir, err := t.Resolve(root)
	if err != nil {
		return &Result{Target: t, Errors: Errors{{Message: err.Error()}}}, nil
	}

	key := keyOf(t, opts)
	var res *Result
	var kept *compactResult
	if e := r.lookup(key); e != nil && e.dir == dir {
		if d, err := treeDigest(root, e.dirs); err == nil && d == e.digest {
			kept = e.result
		}
	}
	if kept == nil {
		var dirs []string
		var cacheable bool
		r.builds.Add(1)
		if res, dirs, cacheable, err = r.renderWithin(ctx, root, dir, t, opts); err != nil {
			return nil, err
		}
		if kept, err = compact(res); err != nil {
			return nil, fmt.Errorf("render %s: %w", t, err)
		}
		if cacheable && r.cache != nil {
			if d, err := treeDigest(root, dirs); err == nil {
				r.store(key, &cacheEntry{dir: dir, dirs: dirs, digest: d, result: kept})
			}
		}
	} else if res, err = kept.expand(); err != nil {
		return nil, fmt.Errorf("render %s: %w", t, err)
	}
	if len(res.Errors) == 0 {
		stampRevision(res.Objects, opts.Revision)
		res.Digest = kept.digest(opts.Revision)
	}
	return res, nil
}

func (r *Renderer) lookup(k cacheKey) *cacheEntry {
	if r.cache == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cache[k]
}

func (r *Renderer) store(k cacheKey, e *cacheEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cache[k] = e
}

// compactResult is a Result kept in the Renderer's cache, its objects as
// JSON. A controller keeps every target's last render for as long as it
// runs, and the objects it applies besides: as maps, each render would be
// held twice, at about three times its JSON's size each time. A cache hit
// decodes them again, which costs far less than the render it saves.
// Every render is compacted, cached or not: its digest is taken of the
// JSON.
type compactResult struct {
	result  Result // without objects
	objects [][]byte
	sum     [sha256.Size]byte // of objects, one per line
}

func compact(r *Result) (*compactResult, error) {
	c := &compactResult{result: *r, objects: make([][]byte, len(r.Objects))}
	c.result.Objects = nil
	c.result.Errors = append(Errors(nil), r.Errors...)
	c.result.Warnings = append(Errors(nil), r.Warnings...)
	h := sha256.New()
	for i, o := range r.Objects {
		data, err := o.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("keep %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		c.objects[i] = data
		h.Write(data)
		h.Write([]byte{'\n'})
	}
	h.Sum(c.sum[:0])
	return c, nil
}

// digest is Result.Digest for the objects stamped with revision: the
// stamp is the one thing a render adds to what was compacted.
func (c *compactResult) digest(revision string) string {
	h := sha256.New()
	h.Write(c.sum[:])
	h.Write([]byte(revision))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// expand returns a Result of its own, equal to the one compacted.
func (c *compactResult) expand() (*Result, error) {
	r := c.result
	r.Errors = append(Errors(nil), c.result.Errors...)
	r.Warnings = append(Errors(nil), c.result.Warnings...)
	if c.objects != nil {
		r.Objects = make([]*unstructured.Unstructured, len(c.objects))
	}
	for i, data := range c.objects {
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("read kept object: %w", err)
		}
		r.Objects[i] = o
	}
	return &r, nil
}

// renderTarget does the work of Render for one resolved directory. It
// returns the directories the render read and whether its result may be
// cached (not when remote bases were loaded: they can change under the
// same files).
func (r *Renderer) renderTarget(ctx context.Context, root, dir string, t Target, opts Options) (*Result, []string, bool) {
	res := &Result{Target: t, Dir: dir}
	fsys, err := newConfinedFS(root, opts.MaxFileSize, opts.AllowRemoteBases)
	if err != nil {
		res.fail(Error{Message: err.Error()})
		return res, nil, false
	}
	fsys.done = ctx.Done()
	fsys.files = r.files.forRoot(fsys.root, opts.Revision)
	fsys.checks = &r.checks
	errs := precheck(fsys, dir, opts.AllowRemoteBases)
	if v := fsys.Violations(); len(v) > 0 || len(errs) > 0 {
		errs = append(errs, v...)
		sortErrors(errs)
		res.fail(errs...)
		return res, fsys.Dirs(), true
	}
	b, kerr := kustomize(fsys, dir, false)
	cacheable := !fsys.remoteUsed
	if v := fsys.Violations(); len(v) > 0 {
		sortErrors(v)
		res.fail(v...)
		return res, fsys.Dirs(), cacheable
	}
	if kerr != nil {
		errs := fsys.explain(dir, kerr)
		sortErrors(errs)
		res.fail(errs...)
		return res, fsys.Dirs(), cacheable
	}

	if errs := checkLimits(b, opts.Limits); len(errs) > 0 {
		res.fail(errs...)
		return res, fsys.Dirs(), cacheable
	}
	errs, warns := check(ctx, b, t, opts, fsys.files)
	if len(errs) > 0 || len(warns) > 0 {
		// Built again, this time tracking where each object came from,
		// so that the errors and warnings name their files: a build
		// that passes without either never pays for that. The objects
		// stay those of the first build, which are the same.
		traced, kerr := kustomize(fsys, dir, true)
		if kerr != nil {
			errs := fsys.explain(dir, kerr)
			sortErrors(errs)
			res.fail(errs...)
			return res, fsys.Dirs(), cacheable
		}
		errs, warns = check(ctx, traced, t, opts, fsys.files)
	}
	sortErrors(warns)
	res.Warnings = warns
	if len(errs) > 0 {
		sortErrors(errs)
		res.fail(errs...)
		return res, fsys.Dirs(), cacheable
	}
	Sort(b.objects)
	res.Objects = b.objects
	return res, fsys.Dirs(), cacheable
}

// check applies gyre's rules to a target's build: tenancy, the API
// schemas, strict core types, Cyclone's references and the tenant's Pod
// Security level and execution context. It returns the errors, and the
// warnings about what the tenant's level will stop at run time.
//
// memo shares schema validation between the tenant's objects that differ
// only in metadata, such as the copies of a base's objects its overlays
// render.
func check(ctx context.Context, b *built, t Target, opts Options, memo *rootFiles) ([]Error, []Error) {
	fixArtifactSources(b.objects)
	nameContainers(b.objects)
	errs := enforceTenancy(b.objects, b.origins, t, opts.AllowedKinds, opts.Schemas)
	for i, o := range b.objects {
		for _, fe := range opts.Schemas.validate(ctx, o, memo, t.Tenant) {
			errs = append(errs, fieldError(b.origins[i], o, fe))
		}
		errs = append(errs, strictCore(b.origins[i], o)...)
		for _, e := range checkMetadata(b.origins[i], o, opts.Schemas) {
			// A CRD's schema validation checks annotations too.
			if !slices.Contains(errs, e) {
				errs = append(errs, e)
			}
		}
	}
	cerrs, warns := checkCyclone(b.objects, b.origins, t)
	return append(errs, cerrs...), warns
}

// strictCore checks ConfigMaps and Secrets, which have no CRD schema,
// against their Go types, so that a misspelt field is an error rather
// than silently dropped.
func strictCore(file string, o *unstructured.Unstructured) []Error {
	if o.GroupVersionKind().Group != "" || o.GroupVersionKind().Version != "v1" {
		return nil
	}
	var into runtime.Object
	switch o.GetKind() {
	case "ConfigMap":
		into = &corev1.ConfigMap{}
	case "Secret":
		into = &corev1.Secret{}
	default:
		return nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		return []Error{{File: file, Kind: o.GetKind(), Name: o.GetName(), Message: err.Error()}}
	}
	return nil
}

// cleanMessage makes a kustomize error message repository-relative: no
// absolute paths of the checkout or of gyre's entry kustomization.
func (f *confinedFS) cleanMessage(msg string) string {
	msg = strings.ReplaceAll(msg, f.vdir+string(filepath.Separator), "")
	msg = strings.ReplaceAll(msg, f.vdir, ".")
	msg = strings.ReplaceAll(msg, f.root+string(filepath.Separator), "")
	return strings.ReplaceAll(msg, f.root, ".")
}

// treeDigest hashes the directories a render read: for each, the names,
// types and contents of its entries (subdirectories by name only; the
// ones the render entered are in dirs themselves). A missing directory
// hashes as missing.
func treeDigest(root string, dirs []string) (string, error) {
	h := sha256.New()
	for _, d := range dirs {
		fmt.Fprintf(h, "dir %s\n", d)
		abs := filepath.Join(root, filepath.FromSlash(d))
		entries, err := os.ReadDir(abs)
		if err != nil {
			fmt.Fprintf(h, "missing\n")
			continue
		}
		for _, e := range entries {
			p := filepath.Join(abs, e.Name())
			switch {
			case e.Type()&os.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				fmt.Fprintf(h, "link %s %s\n", e.Name(), target)
			case e.IsDir():
				fmt.Fprintf(h, "subdir %s\n", e.Name())
			case !e.Type().IsRegular():
				// A FIFO or device is never read by a render (the file
				// system refuses it); hashing it could block.
				fmt.Fprintf(h, "special %s\n", e.Name())
			default:
				f, err := os.Open(p)
				if err != nil {
					return "", err
				}
				fh := sha256.New()
				_, err = io.Copy(fh, f)
				f.Close()
				if err != nil {
					return "", err
				}
				fmt.Fprintf(h, "file %s %x\n", e.Name(), fh.Sum(nil))
			}
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
