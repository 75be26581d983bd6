package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"k8s.io/utils/clock"
)

// Artifact is a checkout of one commit.
type Artifact struct {
	// Revision names what was checked out: "main@sha1:<commit>" for a
	// branch, "v1.2.0@sha1:<commit>" for a tag or semver range,
	// "sha1:<commit>" for an exact commit.
	Revision string
	// Commit is the full SHA-1 checked out; empty for a plain directory.
	Commit string
	// Dir holds the files, without .git and ignored paths. Treat it as
	// read-only: it is shared and content-addressed.
	Dir string
	// Digest is the tree digest of Dir, see Digest.
	Digest string
}

// Request names a remote ref and how to check it out.
type Request struct {
	// Name is the artifact directory's name in the cache, one per
	// consumer (the reconciler passes the Repository's name); empty means
	// one derived from URL.
	Name string
	// URL of the remote: https://, http://, ssh:// or scp-like
	// user@host:path.
	URL string
	// Ref to follow.
	Ref Ref
	// Auth for the remote; nil is anonymous.
	Auth *Auth
	// Ignore lists paths, in .gitignore syntax, left out of the artifact.
	Ignore string
	// Limits cap the fetch and the checkout; zero fields take defaults.
	Limits Limits
}

// Stats counts remote operations since the Git was made.
type Stats struct {
	// Listings is the number of ref listings (ls-remote).
	Listings int64
	// Fetches is the number of object fetches.
	Fetches int64
}

// Git resolves refs on remotes and checks them out into a cache. It is
// safe for concurrent use; fetches for one artifact name are serialised.
type Git struct {
	// CacheDir holds the artifacts, see Store; empty means Store's
	// default.
	CacheDir string
	// Keep is how many artifacts per name stay on disk; DefaultKeep when
	// zero.
	Keep int
	// Clock stamps artifact directories, which orders pruning; the real
	// clock when nil.
	Clock clock.PassiveClock

	listings, fetches, packBytes atomic.Int64

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// times caches commit times for semver tie-breaks; a commit's time
	// never changes.
	times sync.Map
}

// Stats returns the operation counts so far.
func (g *Git) Stats() Stats {
	return Stats{Listings: g.listings.Load(), Fetches: g.fetches.Load()}
}

// PackBytes returns the number of pack bytes read from remotes so far; a
// fetch stopped at spec.limits.maxArtifactBytes counts what it read.
func (g *Git) PackBytes() int64 { return g.packBytes.Load() }

// Store returns the layout of the Git's cache.
func (g *Git) Store() Store { return Store{Root: g.CacheDir} }

// Resolve returns the commit ref points at on the remote and the short
// name its revision carries ("main", "v1.2.0"; empty for an exact
// commit). It lists the remote's refs once and fetches nothing; an exact
// commit is returned without contacting the remote.
func (g *Git) Resolve(ctx context.Context, url string, ref Ref, auth *Auth) (commit, name string, err error) {
	ep, ref, err := prepare(url, ref)
	if err != nil {
		return "", "", err
	}
	if ref.Commit != "" {
		return ref.Commit, "", nil
	}
	t, err := g.resolve(ctx, ep, url, ref, auth)
	if err != nil {
		return "", "", err
	}
	return t.commit, t.name, nil
}

// Fetch makes sure the artifact for req's ref exists and returns it. When
// the ref still resolves to the commit of last and that checkout is on
// disk, it costs one listing and no fetch (an exact commit costs nothing),
// and fetched is false. Otherwise it fetches (shallow and single-ref when
// the server allows), checks out atomically, prunes old artifacts and
// returns fetched true. A checkout of the same commit already in the
// cache is reused without fetching.
func (g *Git) Fetch(ctx context.Context, req Request, last *Artifact) (art Artifact, fetched bool, err error) {
	ep, ref, err := prepare(req.URL, req.Ref)
	if err != nil {
		return Artifact{}, false, err
	}
	name := req.Name
	if name == "" {
		name = nameForURL(req.URL)
	}
	unlock := g.lock(name)
	defer unlock()

	// An exact commit never moves: when its checkout is in the cache,
	// the remote has nothing to say.
	var t target
	if ref.Commit != "" && isDir(g.Store().Dir(name, ref.Commit, req.Ignore)) {
		t = target{commit: ref.Commit}
	} else if t, err = g.resolve(ctx, ep, req.URL, ref, req.Auth); err != nil {
		return Artifact{}, false, err
	}

	dir := g.Store().Dir(name, t.commit, req.Ignore)
	art = Artifact{Revision: Revision(t.name, t.commit), Commit: t.commit, Dir: dir}
	if isDir(dir) {
		if last != nil && last.Dir == dir && last.Digest != "" {
			art.Digest = last.Digest
		} else if art.Digest, err = Digest(dir); err != nil {
			return Artifact{}, false, newError(StorageFailed, req.URL, err)
		}
		if last == nil || last.Dir != dir {
			// An older checkout became current again: keep it from
			// being pruned as the oldest.
			if err := touch(dir, g.now()); err != nil {
				return Artifact{}, false, newError(StorageFailed, req.URL, err)
			}
		}
		return art, false, nil
	}

	limits := req.Limits.withDefaults()
	commit, err := g.fetch(ctx, ep, req.URL, t, req.Auth, limits)
	if err != nil {
		return Artifact{}, false, err
	}
	if art.Digest, err = g.checkout(ctx, commit, dir, req.Ignore, limits); err != nil {
		var se *Error
		switch {
		case isLimit(err):
			return Artifact{}, false, newError(LimitExceeded, req.URL, err)
		case errors.As(err, &se):
			se.URL = RedactURL(req.URL)
			return Artifact{}, false, se
		case ctx.Err() != nil:
			return Artifact{}, false, newError(FetchFailed, req.URL, fmt.Errorf("check out: %w", err))
		}
		return Artifact{}, false, newError(StorageFailed, req.URL, err)
	}
	// The new artifact is good whatever pruning says: a stale checkout
	// left behind is harmless and the next fetch prunes again.
	_ = prune(filepath.Dir(dir), dir, g.keep())
	return art, true, nil
}

// checkout writes commit into dir through a temporary sibling and a
// rename, and returns the digest.
func (g *Git) checkout(ctx context.Context, commit *object.Commit, dir, ignore string, limits Limits) (string, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op after a successful rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := writeTree(ctx, commit, tmp, ignoreMatcher(ignore), &budget{limits: limits}); err != nil {
		return "", err
	}
	digest, err := Digest(tmp)
	if err != nil {
		return "", err
	}
	return digest, publish(tmp, dir, g.now())
}

func (g *Git) keep() int {
	if g.Keep > 0 {
		return g.Keep
	}
	return DefaultKeep
}

func (g *Git) now() time.Time {
	if g.Clock == nil {
		return clock.RealClock{}.Now()
	}
	return g.Clock.Now()
}

// lock serialises work on one artifact name and returns the unlock.
func (g *Git) lock(name string) func() {
	g.mu.Lock()
	if g.locks == nil {
		g.locks = map[string]*sync.Mutex{}
	}
	l, ok := g.locks[name]
	if !ok {
		l = &sync.Mutex{}
		g.locks[name] = l
	}
	g.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// prepare parses the URL and validates the ref.
func prepare(url string, ref Ref) (*transport.Endpoint, Ref, error) {
	ep, err := parseURL(url)
	if err != nil {
		return nil, ref, err
	}
	ref, err = ref.validate()
	if err != nil {
		return nil, ref, newError(InvalidRef, url, err)
	}
	return ep, ref, nil
}

// parseURL accepts http, https and ssh remotes, scp-like included.
func parseURL(url string) (*transport.Endpoint, error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, newError(InvalidURL, url, errors.New("cannot parse the URL"))
	}
	switch ep.Protocol {
	case "http", "https", "ssh":
	default:
		return nil, newError(InvalidURL, url, fmt.Errorf("scheme %q is not supported; use https, http or ssh", ep.Protocol))
	}
	if ep.Host == "" {
		return nil, newError(InvalidURL, url, errors.New("the URL has no host"))
	}
	return ep, nil
}

// resolve lists the remote once and finds ref in it.
func (g *Git) resolve(ctx context.Context, ep *transport.Endpoint, url string, ref Ref, auth *Auth) (target, error) {
	refs, err := g.list(ctx, ep, url, auth)
	if err != nil {
		return target{}, err
	}
	l := newListing(refs)
	t, tied, err := l.resolve(ref)
	if err != nil {
		return target{}, newError(RefNotFound, url, err)
	}
	if tied == nil {
		return t, nil
	}
	times, err := g.commitTimes(ctx, ep, url, tied, auth)
	if err != nil {
		return target{}, err
	}
	return breakTie(tied, func(c string) int64 { return times[c] }), nil
}

func (g *Git) list(ctx context.Context, ep *transport.Endpoint, url string, auth *Auth) ([]*plumbing.Reference, error) {
	am, err := auth.method(ep)
	if err != nil {
		return nil, err
	}
	g.listings.Add(1)
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{url}})
	var refs []*plumbing.Reference
	px, release := sshProxy(ctx, ep)
	defer release()
	err = withContext(ctx, func() (err error) {
		refs, err = rem.ListContext(ctx, &git.ListOptions{Auth: am, CABundle: caBundle(auth), PeelingOption: git.AppendPeeled, ProxyOptions: px})
		return err
	})
	if err != nil {
		return nil, classify(url, "list refs", err, auth)
	}
	return refs, nil
}

// commitTimes returns the commit times of tied semver candidates, from
// the cache or by a shallow fetch of just those tags.
func (g *Git) commitTimes(ctx context.Context, ep *transport.Endpoint, url string, cands []candidate, auth *Auth) (map[string]int64, error) {
	times := map[string]int64{}
	var specs []config.RefSpec
	for _, c := range cands {
		if v, ok := g.times.Load(c.commit); ok {
			times[c.commit] = v.(int64)
			continue
		}
		n := plumbing.NewTagReferenceName(c.tag)
		specs = append(specs, config.RefSpec(fmt.Sprintf("+%s:%s", n, n)))
	}
	if len(specs) == 0 {
		return times, nil
	}
	repo, err := g.fetchSpecs(ctx, ep, url, specs, 1, auth, Limits{}.withDefaults())
	if err != nil {
		return nil, err
	}
	for _, c := range cands {
		if _, ok := times[c.commit]; ok {
			continue
		}
		commit, err := repo.CommitObject(plumbing.NewHash(c.commit))
		if err != nil {
			return nil, newError(FetchFailed, url, fmt.Errorf("read commit of tag %q: %w", c.tag, err))
		}
		t := commit.Committer.When.Unix()
		g.times.Store(c.commit, t)
		times[c.commit] = t
	}
	return times, nil
}

// fetch brings the target's commit into memory. A ref tip is fetched
// shallow through its ref. Any other commit is asked for by hash, which
// needs a server that allows unadvertised wants; failing that, every
// branch and tag is fetched in full and the commit looked up there.
func (g *Git) fetch(ctx context.Context, ep *transport.Endpoint, url string, t target, auth *Auth, limits Limits) (*object.Commit, error) {
	var specs []config.RefSpec
	if t.refName != "" {
		specs = []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", t.refName, t.refName))}
	} else {
		specs = []config.RefSpec{config.RefSpec(fmt.Sprintf("%s:refs/gyre/commit", t.commit))}
	}
	repo, err := g.fetchSpecs(ctx, ep, url, specs, 1, auth, limits)
	if errors.Is(err, git.ErrExactSHA1NotSupported) && t.refName == "" {
		repo, err = g.fetchSpecs(ctx, ep, url, []config.RefSpec{
			"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
		}, 0, auth, limits)
	}
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, classify(url, "fetch", err, auth)
	}
	commit, err := repo.CommitObject(plumbing.NewHash(t.commit))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, newError(RefNotFound, url, fmt.Errorf("commit %s not found", t.commit))
	}
	if err != nil {
		return nil, newError(FetchFailed, url, fmt.Errorf("read commit %s: %w", t.commit, err))
	}
	return commit, nil
}

// fetchSpecs fetches refspecs into a fresh in-memory repository that
// refuses more than limits.MaxArtifactBytes of pack. depth 0 is a full
// fetch. Errors of go-git's own are returned unclassified so
// the caller can fall back on ErrExactSHA1NotSupported.
func (g *Git) fetchSpecs(ctx context.Context, ep *transport.Endpoint, url string, specs []config.RefSpec, depth int, auth *Auth, limits Limits) (*git.Repository, error) {
	am, err := auth.method(ep)
	if err != nil {
		return nil, err
	}
	st := newCappedStorage(limits.MaxArtifactBytes)
	defer func() { g.packBytes.Add(st.received) }()
	repo, err := git.Init(st, nil)
	if err != nil {
		return nil, err
	}
	rem, err := repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{url}})
	if err != nil {
		return nil, err
	}
	g.fetches.Add(1)
	px, release := sshProxy(ctx, ep)
	defer release()
	err = withContext(ctx, func() error {
		return rem.FetchContext(ctx, &git.FetchOptions{
			RefSpecs:     specs,
			Depth:        depth,
			Auth:         am,
			CABundle:     caBundle(auth),
			Tags:         git.NoTags,
			Force:        true,
			ProxyOptions: px,
		})
	})
	if errors.Is(err, git.ErrExactSHA1NotSupported) {
		return nil, err
	}
	if isLimit(err) {
		return nil, newError(LimitExceeded, url, err)
	}
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, classify(url, "fetch", err, auth)
	}
	return repo, nil
}

// withContext runs f and returns early with ctx's error when ctx ends
// first. go-git honours the context once connected, but not while it
// opens an SSH connection; sshProxy makes that connection end with ctx
// too, so f soon fails on its own, and this guards against any other
// wait go-git does not bound. f's results are then dropped.
func withContext(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w (the connection did not answer in time)", ctx.Err())
	}
}

func caBundle(a *Auth) []byte {
	if a == nil {
		return nil
	}
	return a.CAFile
}

// classify turns a transport error into an *Error with a Reason.
func classify(url, op string, err error, auth *Auth) *Error {
	err = fmt.Errorf("%s: %w", op, err)
	var unknown *errUnknownHostKey
	var keyErr *knownhosts.KeyError
	var authErr *ssh.ServerAuthError
	var netErr *net.OpError
	msg := err.Error()
	reason := FetchFailed
	switch {
	case errors.As(err, &unknown):
		reason = UnknownHostKey
	case errors.As(err, &keyErr):
		// The host is known with another key: possibly an attack.
		reason = UnknownHostKey
		err = fmt.Errorf("%s: host key mismatch against known_hosts", op)
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod),
		errors.As(err, &authErr),
		strings.Contains(msg, "unable to authenticate"):
		reason = AuthenticationFailed
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		reason = RefNotFound
		err = fmt.Errorf("%s: the repository has no commits", op)
	case errors.As(err, &netErr), errors.Is(err, transport.ErrRepositoryNotFound):
		reason = FetchFailed
	}
	return newError(reason, url, err, auth.secrets()...)
}
