package kubeauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// TokenHeader carries the caller's bearer token when the request comes
// through the API server's service proxy: the API server removes the
// Authorization header of every request it authenticates, so a token in
// Authorization never reaches a proxied service. Either header is checked
// the same way, with a TokenReview.
const TokenHeader = "X-Gyre-Token"

// Token is the request's bearer token, from TokenHeader or else the
// Authorization header; empty when it has none.
func Token(r *http.Request) string {
	if t := strings.TrimSpace(r.Header.Get(TokenHeader)); t != "" {
		return t
	}
	auth := r.Header.Get("Authorization")
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:])
	}
	return ""
}

// Reviewer asks the API server who a token belongs to and what its user
// may do.
type Reviewer struct {
	// Client creates the reviews; its own identity needs the right to
	// create tokenreviews and subjectaccessreviews.
	Client kubernetes.Interface
}

// Authenticate returns the token's user, or nil for a token the API
// server does not accept.
func (rv Reviewer) Authenticate(ctx context.Context, token string) (*authenticationv1.UserInfo, error) {
	tr, err := rv.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return nil, nil
	}
	return &tr.Status.User, nil
}

// Allowed says whether user may do what attrs describe.
func (rv Reviewer) Allowed(ctx context.Context, user *authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := rv.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
			ResourceAttributes: &attrs,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	return sar.Status.Allowed, nil
}

// Cache remembers the answers of a Reviewer for TTL, keyed by a hash of
// the token (never the token itself) and the resource attributes. A page
// that lists runs of twenty namespaces, and reloads every few seconds
// while a run goes on, would otherwise cost the API server dozens of
// reviews a view; a revoked right or token is honoured once TTL has
// passed, as kube-rbac-proxy's and the kubelet's caches do.
type Cache struct {
	Reviewer Reviewer
	// TTL is how long an answer is kept.
	TTL time.Duration
	// Clock is the cache's time; the real one when nil.
	Clock clock.PassiveClock

	mu      sync.Mutex
	users   map[[sha256.Size]byte]userEntry
	answers map[answerKey]answerEntry
}

type userEntry struct {
	user    *authenticationv1.UserInfo
	expires time.Time
}

type answerKey struct {
	token [sha256.Size]byte
	attrs authorizationv1.ResourceAttributes
}

type answerEntry struct {
	allowed bool
	expires time.Time
}

// maxEntries bounds each map: past it, expired entries are dropped, and
// if none are, all are, so that a flood of tokens cannot grow memory.
const maxEntries = 10000

func (c *Cache) now() time.Time {
	if c.Clock == nil {
		return time.Now()
	}
	return c.Clock.Now()
}

// Authenticate is Reviewer.Authenticate, remembered. Errors are not.
func (c *Cache) Authenticate(ctx context.Context, token string) (*authenticationv1.UserInfo, error) {
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	e, ok := c.users[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.user, nil
	}
	user, err := c.Reviewer.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.users == nil || len(c.users) >= maxEntries {
		c.users = prune(c.users, now, func(e userEntry) time.Time { return e.expires })
	}
	c.users[key] = userEntry{user: user, expires: now.Add(c.TTL)}
	return user, nil
}

// Allowed is Reviewer.Allowed for the user of token, remembered. Errors
// are not.
func (c *Cache) Allowed(ctx context.Context, token string, user *authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, error) {
	key := answerKey{token: sha256.Sum256([]byte(token)), attrs: attrs}
	now := c.now()
	c.mu.Lock()
	e, ok := c.answers[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.allowed, nil
	}
	allowed, err := c.Reviewer.Allowed(ctx, user, attrs)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil || len(c.answers) >= maxEntries {
		c.answers = prune(c.answers, now, func(e answerEntry) time.Time { return e.expires })
	}
	c.answers[key] = answerEntry{allowed: allowed, expires: now.Add(c.TTL)}
	return allowed, nil
}

func prune[K comparable, V any](m map[K]V, now time.Time, expires func(V) time.Time) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	for k, v := range m {
		if !now.Before(expires(v)) {
			delete(m, k)
		}
	}
	if len(m) >= maxEntries {
		return map[K]V{}
	}
	return m
}
