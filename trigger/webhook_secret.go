package trigger

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretTTL is how long the webhook server reuses a webhook secret it read,
// or the failure to read it. A rotated secret takes effect within it.
const SecretTTL = 10 * time.Second

// secretCache reads webhook secrets and keeps them for SecretTTL.
//
// Every request, signed or not, needs the secret of each trigger of its
// repository before it can be refused. Without the cache a flood of forged
// requests would become a flood of Secret reads on the API server; with it
// the server reads each Secret at most once per SecretTTL. It holds only the
// Secrets of SCM triggers, never a cluster-wide Secret informer.
type secretCache struct {
	reader client.Reader
	clock  clock.PassiveClock

	mu      sync.Mutex
	entries map[client.ObjectKey]secretEntry
}

type secretEntry struct {
	value []byte
	err   error
	read  time.Time
}

func newSecretCache(reader client.Reader, clk clock.PassiveClock) *secretCache {
	return &secretCache{reader: reader, clock: clk, entries: map[client.ObjectKey]secretEntry{}}
}

// get returns the webhook secret of Secret key. Its value never leaves this
// package: not in an error, a log line or a response.
func (c *secretCache) get(ctx context.Context, key client.ObjectKey) ([]byte, error) {
	now := c.clock.Now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Sub(e.read) < SecretTTL {
		return e.value, e.err
	}

	e = secretEntry{read: now}
	var sec corev1.Secret
	if err := c.reader.Get(ctx, key, &sec); err != nil {
		err = fmt.Errorf("get Secret %s: %w", key, err)
		if !apierrors.IsNotFound(err) {
			// A timeout or a cancelled request says nothing about the
			// Secret: let the next request try again.
			return nil, err
		}
		e.err = err
	} else if v := sec.Data[SecretKey]; len(v) == 0 {
		e.err = fmt.Errorf("secret %s has no key %q", key, SecretKey)
	} else {
		e.value = v
	}
	c.mu.Lock()
	if len(c.entries) > 10000 {
		// Bounded by the Secrets SCM triggers name; start over rather
		// than grow without end if that is somehow vast.
		clear(c.entries)
	}
	c.entries[key] = e
	c.mu.Unlock()
	return e.value, e.err
}
