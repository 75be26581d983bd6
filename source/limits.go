package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/memory"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Defaults of Limits, the same as the Repository API's.
const (
	// DefaultMaxArtifactBytes caps a fetch's pack and a checkout's files.
	DefaultMaxArtifactBytes = 256 << 20
	// DefaultMaxFiles caps the files of a checkout.
	DefaultMaxFiles = 20000
)

// Limits cap what one fetch may take, so that a hostile repository
// cannot exhaust the controller's memory or disk. Zero fields take the
// defaults.
type Limits struct {
	// MaxArtifactBytes caps the bytes received for a fetch and, apart,
	// the total size of the checked-out files.
	MaxArtifactBytes int64
	// MaxFiles caps the number of files (symlinks included) checked out.
	MaxFiles int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxArtifactBytes <= 0 {
		l.MaxArtifactBytes = DefaultMaxArtifactBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l
}

// LimitError is a limit a repository went past. Its message names the
// spec field, the limit and what was seen.
type LimitError struct {
	// Field is the Repository field, such as "spec.limits.maxFiles".
	Field string
	// Limit is the value of that field.
	Limit int64
	// Detail says what went past it.
	Detail string
	// bytes tells whether Limit is a size, printed as a quantity.
	bytes bool
}

// Error implements error.
func (e *LimitError) Error() string {
	limit := fmt.Sprint(e.Limit)
	if e.bytes {
		limit = resource.NewQuantity(e.Limit, resource.BinarySI).String()
	}
	return fmt.Sprintf("artifact exceeds %s (%s): %s", e.Field, limit, e.Detail)
}

func bytesLimit(limit int64, format string, args ...any) *LimitError {
	return &LimitError{Field: "spec.limits.maxArtifactBytes", Limit: limit, Detail: fmt.Sprintf(format, args...), bytes: true}
}

// cappedStorage is an in-memory repository storage that refuses a pack
// larger than max bytes as it arrives. go-git hands a storage that writes
// packfiles the raw stream from the wire; the pack is buffered up to the
// cap, then parsed into memory, so memory never holds more than the cap
// of received bytes (plus the inflated objects, which are counted too).
type cappedStorage struct {
	*memory.Storage
	max int64
	// received counts the pack bytes read from the remote.
	received int64
	// inflated counts the inflated size of the objects stored.
	inflated int64
}

func newCappedStorage(max int64) *cappedStorage {
	return &cappedStorage{Storage: memory.NewStorage(), max: max}
}

// PackfileWriter implements storer.PackfileWriter: go-git then copies the
// pack into the returned writer before anything is parsed.
func (s *cappedStorage) PackfileWriter() (io.WriteCloser, error) {
	return &packWriter{s: s}, nil
}

// SetEncodedObject counts the inflated size of each object, which a pack
// can make far larger than its bytes on the wire.
func (s *cappedStorage) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	s.inflated += o.Size()
	if s.inflated > s.max {
		return plumbing.ZeroHash, bytesLimit(s.max, "the fetched objects inflate to more than %d bytes", s.inflated)
	}
	return s.Storage.SetEncodedObject(o)
}

type packWriter struct {
	s   *cappedStorage
	buf bytes.Buffer
}

func (w *packWriter) Write(p []byte) (int, error) {
	w.s.received += int64(len(p))
	if w.s.received > w.s.max {
		// Returning an error ends go-git's copy from the connection, so
		// the rest of the pack is never read.
		return 0, bytesLimit(w.s.max, "the remote sent more than %d bytes", w.s.received)
	}
	return w.buf.Write(p)
}

func (w *packWriter) Close() error {
	if w.buf.Len() == 0 {
		return nil
	}
	// A pack of a few MiB can inflate to GiBs: the object sizes its
	// headers declare are checked before anything is inflated in memory.
	if err := w.s.prescan(w.buf.Bytes()); err != nil {
		return err
	}
	p, err := packfile.NewParserWithStorage(packfile.NewScanner(bytes.NewReader(w.buf.Bytes())), w.s)
	if err != nil {
		return err
	}
	_, err = p.Parse()
	w.buf = bytes.Buffer{}
	return err
}

// prescan adds up the inflated sizes a pack declares (for a delta, the
// size of the object it makes) and refuses the pack past the cap. It
// streams: only the first bytes of each delta are kept.
func (s *cappedStorage) prescan(pack []byte) error {
	sc := packfile.NewScanner(bytes.NewReader(pack))
	_, count, err := sc.Header()
	if err != nil {
		return err
	}
	var total int64
	for range count {
		h, err := sc.NextObjectHeader()
		if err != nil {
			return err
		}
		size := h.Length
		if h.Type == plumbing.OFSDeltaObject || h.Type == plumbing.REFDeltaObject {
			var head deltaHead
			if _, _, err := sc.NextObject(&head); err != nil {
				return err
			}
			size = head.targetSize()
		}
		total += size
		if total > s.max {
			return bytesLimit(s.max, "the fetched objects inflate to more than %d bytes", total)
		}
	}
	return nil
}

// deltaHead keeps the start of a delta: two varints, the sizes of the
// base and of the object the delta makes.
type deltaHead struct{ b []byte }

func (d *deltaHead) Write(p []byte) (int, error) {
	if n := 20 - len(d.b); n > 0 {
		d.b = append(d.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (d *deltaHead) targetSize() int64 {
	b := d.b
	var sizes [2]int64
	for i := range sizes {
		var shift uint
		for len(b) > 0 && shift < 63 {
			c := b[0]
			b = b[1:]
			sizes[i] |= int64(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				break
			}
		}
	}
	return sizes[1]
}

// budget counts the files and bytes a checkout wrote against Limits.
type budget struct {
	limits Limits
	files  int64
	bytes  int64
}

// file takes one file of size bytes from the budget, before it is read.
func (b *budget) file(name string, size int64) error {
	b.files++
	if b.files > b.limits.MaxFiles {
		return &LimitError{Field: "spec.limits.maxFiles", Limit: b.limits.MaxFiles, Detail: fmt.Sprintf("more than %d files, at %s", b.limits.MaxFiles, name)}
	}
	if size > b.limits.MaxArtifactBytes-b.bytes {
		return bytesLimit(b.limits.MaxArtifactBytes, "%s is %d bytes and %d bytes are left", name, size, b.limits.MaxArtifactBytes-b.bytes)
	}
	b.bytes += size
	return nil
}

// isLimit reports whether err is a LimitError.
func isLimit(err error) bool {
	var le *LimitError
	return errors.As(err, &le)
}
