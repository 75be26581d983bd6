package runlogs

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Key names one container log of one stage attempt of one run.
type Key struct {
	Namespace string
	Run       string
	Stage     string
	Attempt   int32
	Container string
}

// String is the key as a slash-separated path, as in errors and URLs.
func (k Key) String() string {
	return k.Namespace + "/" + k.Run + "/" + k.Stage + "/" + strconv.Itoa(int(k.Attempt)) + "/" + k.Container
}

// Validate refuses names that are not Kubernetes names: they could climb
// out of the store's directory or collide with its file names.
func (k Key) Validate() error {
	if err := validName("namespace", k.Namespace); err != nil {
		return err
	}
	if err := validName("run", k.Run); err != nil {
		return err
	}
	if err := validName("stage", k.Stage); err != nil {
		return err
	}
	if k.Attempt < 1 {
		return fmt.Errorf("log key %s: attempt must be at least 1", k)
	}
	return validName("container", k.Container)
}

// validName accepts DNS subdomains (run and stage names) and DNS labels
// (namespaces, containers), which hold neither "/" nor "..".
func validName(what, name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("log %s name %q: %s", what, name, strings.Join(errs, "; "))
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("log %s name %q: must not contain \"..\"", what, name)
	}
	return nil
}

// ErrNotFound is returned by Open for a log that is not stored.
var ErrNotFound = errors.New("log not found")

// Store keeps container logs. Implementations must make Write atomic: a
// reader sees the whole previous log or the whole new one, never part.
// Object storage fits this interface: a key per object, a prefix listing,
// a prefix deletion.
type Store interface {
	// Write stores the log read from r under k, replacing any earlier one.
	Write(ctx context.Context, k Key, r io.Reader) error
	// Open returns the log under k, uncompressed; ErrNotFound if none.
	Open(ctx context.Context, k Key) (io.ReadCloser, error)
	// List returns the keys of a run's logs, sorted by stage, attempt
	// and container.
	List(ctx context.Context, namespace, run string) ([]Key, error)
	// DeleteRun removes every log of a run; a run with none is no error.
	DeleteRun(ctx context.Context, namespace, run string) error
}

// TruncationMarker ends a log cut at the store's size limit.
const TruncationMarker = "\n[gyre: log truncated at %d bytes]\n"

// DefaultMaxBytes is the default cap of one container log, uncompressed.
const DefaultMaxBytes = 10 << 20

// Dir is a Store in a local directory, as
// "<root>/<namespace>/<run>/<stage>/<attempt>/<container>.log.gz".
type Dir struct {
	// Root is the directory the logs live under.
	Root string
	// MaxBytes caps each container log, uncompressed; past it the log is
	// cut and ends with TruncationMarker. Default DefaultMaxBytes.
	MaxBytes int64
}

var _ Store = (*Dir)(nil)

const suffix = ".log.gz"

func (d *Dir) path(k Key) string {
	return filepath.Join(d.Root, k.Namespace, k.Run, k.Stage, strconv.Itoa(int(k.Attempt)), k.Container+suffix)
}

func (d *Dir) runDir(namespace, run string) (string, error) {
	if err := validName("namespace", namespace); err != nil {
		return "", err
	}
	if err := validName("run", run); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, namespace, run), nil
}

// Write compresses r into a temporary file next to the log and renames it
// into place, so a crash leaves the old log or the new one.
func (d *Dir) Write(ctx context.Context, k Key, r io.Reader) (err error) {
	if err := k.Validate(); err != nil {
		return err
	}
	max := d.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	path := d.path(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write log %s: %w", k, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write log %s: %w", k, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := gzip.NewWriter(tmp)
	n, err := io.Copy(zw, io.LimitReader(ctxReader{ctx, r}, max))
	if err != nil {
		return fmt.Errorf("write log %s: %w", k, err)
	}
	if n == max {
		// Is there more? One byte tells.
		var one [1]byte
		if m, _ := io.ReadFull(r, one[:]); m > 0 {
			fmt.Fprintf(zw, TruncationMarker, max)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write log %s: %w", k, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write log %s: %w", k, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write log %s: %w", k, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write log %s: %w", k, err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open returns the uncompressed log under k.
func (d *Dir) Open(_ context.Context, k Key) (io.ReadCloser, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(k))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, k)
	}
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", k, err)
	}
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log %s: %w", k, err)
	}
	return gzipFile{zr, f}, nil
}

type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g gzipFile) Close() error {
	g.Reader.Close()
	return g.f.Close()
}

// List returns the keys of a run's logs.
func (d *Dir) List(_ context.Context, namespace, run string) ([]Key, error) {
	dir, err := d.runDir(namespace, run)
	if err != nil {
		return nil, err
	}
	var keys []Key
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if e.IsDir() || !strings.HasSuffix(e.Name(), suffix) {
			return nil // temporary files included
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 3 {
			return nil
		}
		attempt, err := strconv.ParseInt(parts[1], 10, 32)
		if err != nil {
			return nil
		}
		keys = append(keys, Key{Namespace: namespace, Run: run, Stage: parts[0], Attempt: int32(attempt), Container: strings.TrimSuffix(parts[2], suffix)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list logs of run %s/%s: %w", namespace, run, err)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		if a.Attempt != b.Attempt {
			return a.Attempt < b.Attempt
		}
		return a.Container < b.Container
	})
	return keys, nil
}

// DeleteRun removes the run's directory.
func (d *Dir) DeleteRun(_ context.Context, namespace, run string) error {
	dir, err := d.runDir(namespace, run)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete logs of run %s/%s: %w", namespace, run, err)
	}
	return nil
}
