package render

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultFileCacheSize caps the memory a Renderer's file cache holds.
// An entry costs its path, a digest and its messages, about 200 bytes,
// plus the rewritten bytes of a resource file that held YAML lists; a
// shared validation about 300 bytes. The repository of
// BenchmarkTenantReconcilerScale, 500 tenants each with a base of 20
// objects and two overlays, holds about 1.7 MiB (BenchmarkRender reports
// it as cache-KiB), so the cap keeps the last few revisions of a few
// such repositories.
const DefaultFileCacheSize = 16 << 20

// fileCache remembers what gyre's checks made of the YAML files a
// render read, so that a base shared by many overlays, and the
// kustomizations that precheck and kustomize both read, are checked once
// per revision rather than once per read; and the schema validation of
// objects that differ only in metadata, such as a base's objects renamed
// by each overlay, so that it runs once per tenant and revision.
//
// kustomize itself is not cached: its public API builds a whole
// kustomization or nothing. A base's objects leave kustomize's recursion
// before the steps that only the top of a build runs (hashing generated
// names, fixing references to renamed objects, resolving vars, dropping
// local-config objects and build annotations), and carry with them the
// base's transformer configuration and vars, which no file kustomize
// reads can carry. Serving a base as its finished build would therefore
// change what overlays make of it (a merged generated ConfigMap keeps the
// base's hash, a replacement cannot read a local-config object). The
// file system is the one place kustomize lets gyre share work between
// builds without changing their output.
//
// An entry is a pure function of a file's bytes: it is found by path and
// used only when the digest of the bytes just read matches, so a render
// never sees what another file, another tenant's or another revision's,
// made, and a checkout changed in place is checked again. A validation is
// found by the tenant and the digest of the object apart from its
// metadata. Entries live per checkout root and revision: a new revision
// of a root drops the old one's entries, and past the size cap the least
// recently used roots go.
type fileCache struct {
	max int64

	mu    sync.Mutex
	roots map[string]*rootFiles
	size  int64
	tick  uint64

	// hits counts the files served from the cache, validationHits the
	// objects whose validation was.
	hits, validationHits atomic.Int64
}

// rootFiles are the entries of one checkout root at one revision.
type rootFiles struct {
	cache    *fileCache
	root     string
	revision string
	used     uint64
	size     int64
	files    map[fileKey]*checkedFile
	valid    map[validationKey]*schemaCheck
}

// fileKey names a file and the form it was read in: a file kustomize
// reads as a resource has its YAML lists expanded, others not.
type fileKey struct {
	path     string // absolute, symlinks resolved
	resource bool
}

// checkedFile is what checking one content of a file gave: its digest,
// the YAML syntax error, the refusal, and the bytes kustomize gets when
// they differ from the file's.
type checkedFile struct {
	sum     [sha256.Size]byte
	syntax  string
	refused string
	out     []byte // nil: the file's own bytes
}

func (c *checkedFile) cost(path string) int64 {
	return int64(len(path)+len(c.syntax)+len(c.refused)+len(c.out)) + 128
}

func newFileCache(max int64) *fileCache {
	return &fileCache{max: max, roots: map[string]*rootFiles{}}
}

// forRoot returns the entries of root at revision, dropping those of
// another revision of the same root. A nil cache gives nil, which caches
// nothing.
func (c *fileCache) forRoot(root, revision string) *rootFiles {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	rf := c.roots[root]
	if rf == nil || rf.revision != revision {
		if rf != nil {
			c.size -= rf.size
		}
		rf = &rootFiles{cache: c, root: root, revision: revision, files: map[fileKey]*checkedFile{}, valid: map[validationKey]*schemaCheck{}}
		c.roots[root] = rf
	}
	rf.used = c.tick
	return rf
}

// lookup returns the entry of key when it was made from bytes with
// digest sum.
func (rf *rootFiles) lookup(key fileKey, sum [sha256.Size]byte) *checkedFile {
	if rf == nil {
		return nil
	}
	c := rf.cache
	c.mu.Lock()
	e := rf.files[key]
	c.mu.Unlock()
	if e == nil || e.sum != sum {
		return nil
	}
	c.hits.Add(1)
	return e
}

// store records an entry, unless its root was dropped meanwhile or the
// cache is full of more recently used roots.
func (rf *rootFiles) store(key fileKey, e *checkedFile) {
	if rf == nil {
		return
	}
	c := rf.cache
	cost := e.cost(key.path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.roots[rf.root] != rf {
		return
	}
	if old := rf.files[key]; old != nil {
		rf.size -= old.cost(key.path)
		c.size -= old.cost(key.path)
	}
	for c.size+cost > c.max {
		if !c.evictOldest(rf) {
			delete(rf.files, key) // this root alone fills the cache
			return
		}
	}
	rf.files[key] = e
	rf.size += cost
	c.size += cost
}

// validation returns the validation of an object apart from its
// metadata, when one with the same key was validated in this revision.
func (rf *rootFiles) validation(key validationKey) *schemaCheck {
	c := rf.cache
	c.mu.Lock()
	v := rf.valid[key]
	c.mu.Unlock()
	if v != nil {
		c.validationHits.Add(1)
	}
	return v
}

// storeValidation records a validation, within the cache's size.
func (rf *rootFiles) storeValidation(key validationKey, v *schemaCheck) {
	cost := int64(256)
	for _, l := range [][]*field.Error{v.unknown, v.schema, v.lists, v.cel} {
		for _, e := range l {
			cost += int64(len(e.Error())) + 64
		}
	}
	c := rf.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.roots[rf.root] != rf || rf.valid[key] != nil {
		return
	}
	for c.size+cost > c.max {
		if !c.evictOldest(rf) {
			return
		}
	}
	rf.valid[key] = v
	rf.size += cost
	c.size += cost
}

// evictOldest drops the least recently used root other than keep and
// reports whether there was one.
func (c *fileCache) evictOldest(keep *rootFiles) bool {
	var oldest *rootFiles
	for _, rf := range c.roots {
		if rf != keep && (oldest == nil || rf.used < oldest.used) {
			oldest = rf
		}
	}
	if oldest == nil {
		return false
	}
	delete(c.roots, oldest.root)
	c.size -= oldest.size
	return true
}

// held returns the bytes the cache accounts for.
func (c *fileCache) held() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
