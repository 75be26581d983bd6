package render

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Defaults of Limits, the same as the Repository API's.
const (
	// DefaultMaxObjects caps the objects one target renders.
	DefaultMaxObjects = 5000
	// DefaultMaxBytes caps the JSON size of one target's objects.
	DefaultMaxBytes = 32 << 20
	// DefaultTimeout bounds one target's render.
	DefaultTimeout = 30 * time.Second
)

// Limits cap one target's render, so that a hostile repository cannot
// exhaust the controller. They come from the Repository's spec.limits,
// whose field names the errors give. Zero fields take the defaults.
type Limits struct {
	// MaxObjects caps the number of objects the target renders.
	MaxObjects int64
	// MaxBytes caps the total size of the target's objects, as JSON.
	MaxBytes int64
	// Timeout bounds the render.
	Timeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxObjects <= 0 {
		l.MaxObjects = DefaultMaxObjects
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	return l
}

// checkLimits refuses a build with too many objects or too many bytes of
// JSON. It runs before the schemas are checked, which cost far more per
// object.
func checkLimits(b *built, l Limits) []Error {
	l = l.withDefaults()
	if n := int64(len(b.objects)); n > l.MaxObjects {
		return []Error{{Message: fmt.Sprintf("the target renders %d objects, more than spec.limits.maxObjects (%d)", n, l.MaxObjects)}}
	}
	var total int64
	for _, size := range b.sizes {
		total += int64(size)
		if total > l.MaxBytes {
			max := resource.NewQuantity(l.MaxBytes, resource.BinarySI)
			return []Error{{Message: fmt.Sprintf("the target renders more than %d bytes, more than spec.limits.maxRenderBytes (%s)", total, max)}}
		}
	}
	return nil
}

// renderWithin runs renderTarget under the target's timeout. kustomize
// takes no context, so the build runs in its own goroutine and
// renderWithin returns at the deadline; the build's file system refuses
// every read past it, so the goroutine ends at its next read, and its
// result is dropped. A timed-out render is an error of the target, not
// cached. err is the caller's context's error when that ended first.
func (r *Renderer) renderWithin(ctx context.Context, root, dir string, t Target, opts Options) (res *Result, dirs []string, cacheable bool, err error) {
	timeout := opts.Limits.withDefaults().Timeout
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type out struct {
		res       *Result
		dirs      []string
		cacheable bool
	}
	done := make(chan out, 1)
	go func() {
		res, d, c := r.renderTarget(tctx, root, dir, t, opts)
		done <- out{res, d, c}
	}()
	select {
	case o := <-done:
		if tctx.Err() == nil {
			return o.res, o.dirs, o.cacheable, nil
		}
	case <-tctx.Done():
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, false, fmt.Errorf("render %s: %w", t, err)
	}
	res = &Result{Target: t, Dir: dir}
	res.fail(Error{Message: fmt.Sprintf("the render took longer than spec.limits.renderTimeout (%s)", timeout)})
	return res, nil, false, nil
}

// expired refuses a read once the render's deadline has passed.
func (f *confinedFS) expired() error {
	select {
	case <-f.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
