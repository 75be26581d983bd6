package source

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/gitserver"
)

func TestGit_Resolve(t *testing.T) {
	f := newFixture(t, gitserver.HTTPOptions{})
	c := f.seed(t)
	tests := []struct {
		name       string
		ref        Ref
		wantCommit string
		wantName   string
	}{
		{"A branch resolves to its tip.", Ref{Branch: "main"}, c["second"], "main"},
		{"The zero ref follows main.", Ref{}, c["second"], "main"},
		{"Another branch resolves to its own tip.", Ref{Branch: "dev"}, c["dev"], "dev"},
		{"A lightweight tag resolves to its commit.", Ref{Tag: "v1.0.0"}, c["first"], "v1.0.0"},
		{"An annotated tag is peeled to its commit, not the tag object.", Ref{Tag: "v1.1.0"}, c["second"], "v1.1.0"},
		{"A semver range picks the highest tag, with or without a v prefix.", Ref{SemVer: ">=1.0.0"}, c["second"], "1.2.0"},
		{"A semver range below the highest tag picks the highest in range.", Ref{SemVer: "~1.1"}, c["second"], "v1.1.0"},
		{"A semver range leaves pre-releases out unless it names one.", Ref{SemVer: ">=2.0.0-0"}, c["dev"], "v2.0.0-rc.1"},
		{"An exact commit resolves to itself without a name.", Ref{Commit: c["first"]}, c["first"], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			commit, name, err := f.git.Resolve(context.Background(), f.url, tt.ref, nil)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(commit).To(Equal(tt.wantCommit))
			g.Expect(name).To(Equal(tt.wantName))
		})
	}
}

func TestGit_Resolve_semverTieGoesToTheNewestCommit(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, gitserver.HTTPOptions{})
	r := f.repo
	r.WriteFile("a", "1")
	r.Commit("one")
	r.Tag("v1.0.0+build.1")
	r.WriteFile("a", "2")
	newer := r.Commit("two")
	r.Tag("1.0.0+build.0")
	r.Push()

	commit, name, err := f.git.Resolve(context.Background(), f.url, Ref{SemVer: "1.x"}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(commit).To(Equal(newer))
	g.Expect(name).To(Equal("1.0.0+build.0"))

	// Commit times are cached: the next resolve lists and fetches nothing more.
	before := f.git.Stats()
	_, _, err = f.git.Resolve(context.Background(), f.url, Ref{SemVer: "1.x"}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.git.Stats().Fetches).To(Equal(before.Fetches))
}

func TestGit_Fetch_unchangedRemoteCostsOneListingAndNoFetch(t *testing.T) {
	f := newFixture(t, gitserver.HTTPOptions{})
	c := f.seed(t)
	tests := []struct {
		name         string
		ref          Ref
		wantRevision string
		wantListings int
	}{
		{"A branch that did not move is not fetched again.", Ref{Branch: "main"}, "main@sha1:" + c["second"], 1},
		{"A lightweight tag is not fetched again.", Ref{Tag: "v1.0.0"}, "v1.0.0@sha1:" + c["first"], 1},
		{"An annotated tag is not fetched again.", Ref{Tag: "v1.1.0"}, "v1.1.0@sha1:" + c["second"], 1},
		{"A semver range whose highest tag did not change is not fetched again.", Ref{SemVer: "^1"}, "1.2.0@sha1:" + c["second"], 1},
		{"An exact commit already checked out needs no listing at all.", Ref{Commit: c["first"]}, "sha1:" + c["first"], 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			req := f.req(tt.ref)
			req.Name = string(rune('a' + i))
			first, fetched, err := f.git.Fetch(ctx, req, nil)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(fetched).To(BeTrue())
			g.Expect(first.Revision).To(Equal(tt.wantRevision))

			before := f.git.Stats()
			f.srv.ResetRequests()
			again, fetched, err := f.git.Fetch(ctx, req, &first)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(fetched).To(BeFalse())
			g.Expect(again).To(Equal(first))
			after := f.git.Stats()
			g.Expect(after.Listings - before.Listings).To(BeEquivalentTo(tt.wantListings))
			g.Expect(after.Fetches - before.Fetches).To(BeZero())
			// The server agrees: one ref advertisement, no pack.
			g.Expect(f.srv.Requests()).To(Equal(gitserver.Requests{Listings: tt.wantListings}))
		})
	}
}

func TestGit_Fetch_followsTheRemote(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t, gitserver.HTTPOptions{})
	r := f.repo
	r.WriteFile("a.yaml", "v: 1\n")
	one := r.Commit("one")
	r.Push()

	art1, fetched, err := f.git.Fetch(ctx, f.req(Ref{Branch: "main"}), nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fetched).To(BeTrue())
	g.Expect(art1.Commit).To(Equal(one))
	g.Expect(art1.Dir).To(Equal(filepath.Join(f.cache, "app", one)))
	g.Expect(os.ReadFile(filepath.Join(art1.Dir, "a.yaml"))).To(BeEquivalentTo("v: 1\n"))
	g.Expect(filepath.Join(art1.Dir, ".git")).NotTo(BeAnExistingFile())

	// A new commit is fetched.
	r.WriteFile("a.yaml", "v: 2\n")
	two := r.Commit("two")
	r.Push()
	art2, fetched, err := f.git.Fetch(ctx, f.req(Ref{Branch: "main"}), &art1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fetched).To(BeTrue())
	g.Expect(art2.Revision).To(Equal("main@sha1:" + two))
	g.Expect(os.ReadFile(filepath.Join(art2.Dir, "a.yaml"))).To(BeEquivalentTo("v: 2\n"))
	g.Expect(art2.Digest).NotTo(Equal(art1.Digest))

	// A force-push that rewrites history is followed, and the rewritten
	// commit's checkout is new.
	r.Git("reset", "-q", "--hard", one)
	r.WriteFile("b.yaml", "rewritten\n")
	three := r.Commit("rewritten")
	r.ForcePush()
	art3, fetched, err := f.git.Fetch(ctx, f.req(Ref{Branch: "main"}), &art2)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fetched).To(BeTrue())
	g.Expect(art3.Commit).To(Equal(three))
	g.Expect(filepath.Join(art3.Dir, "b.yaml")).To(BeAnExistingFile())
	g.Expect(os.ReadFile(filepath.Join(art3.Dir, "a.yaml"))).To(BeEquivalentTo("v: 1\n"))

	// Only the newest two checkouts stay, and nothing half-written.
	g.Expect(artifacts(g, f.cache, "app")).To(ConsistOf(two, three))

	// Going back to a commit still in the cache reuses it without a fetch.
	r.Git("reset", "-q", "--hard", two)
	r.ForcePush()
	before := f.git.Stats()
	art4, fetched, err := f.git.Fetch(ctx, f.req(Ref{Branch: "main"}), &art3)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fetched).To(BeFalse())
	g.Expect(art4).To(Equal(art2))
	g.Expect(f.git.Stats().Fetches).To(Equal(before.Fetches))
}

func TestRemote_pollsThroughGit(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, gitserver.HTTPOptions{})
	c := f.seed(t)
	var src Source = &Remote{Git: f.git, Request: f.req(Ref{Tag: "v1.1.0"})}
	art, err := src.Artifact(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(art.Revision).To(Equal("v1.1.0@sha1:" + c["second"]))
	_, err = src.Artifact(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.git.Stats()).To(Equal(Stats{Listings: 2, Fetches: 1}))
}

func TestGit_Fetch_concurrentCallsForOneNameFetchOnce(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, gitserver.HTTPOptions{})
	f.seed(t)
	const n = 4
	arts := make([]Artifact, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			arts[i], _, errs[i] = f.git.Fetch(context.Background(), f.req(Ref{}), nil)
		}()
	}
	wg.Wait()
	for i := range n {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(arts[i]).To(Equal(arts[0]))
	}
	g.Expect(f.git.Stats().Fetches).To(BeEquivalentTo(1))
}

func TestGit_Fetch_commitThatIsNoRefTip(t *testing.T) {
	for _, anySHA1 := range []bool{false, true} {
		name := "A server that only serves ref tips gets a full fetch."
		if anySHA1 {
			name = "A server that serves any commit gets a shallow fetch by hash."
		}
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t, gitserver.HTTPOptions{AllowAnySHA1: anySHA1})
			f.seed(t)
			f.repo.WriteFile("README.md", "middle\n")
			middle := f.repo.Commit("middle")
			f.repo.WriteFile("README.md", "last\n")
			f.repo.Commit("last")
			f.repo.Push()

			art, fetched, err := f.git.Fetch(context.Background(), f.req(Ref{Commit: middle}), nil)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(fetched).To(BeTrue())
			g.Expect(art.Revision).To(Equal("sha1:" + middle))
			g.Expect(os.ReadFile(filepath.Join(art.Dir, "README.md"))).To(BeEquivalentTo("middle\n"))
			wantFetches := 2 // the refused try by hash, then the full fetch
			if anySHA1 {
				wantFetches = 1
			}
			g.Expect(f.git.Stats().Fetches).To(BeEquivalentTo(wantFetches))
		})
	}
}

func TestGit_Fetch_ignore(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t, gitserver.HTTPOptions{})
	r := f.repo
	r.WriteFile("base/kustomization.yaml", "resources: []\n")
	r.WriteFile("docs/guide.md", "guide\n")
	r.WriteFile("tenants/a/secret.enc", "x\n")
	r.WriteFile("tenants/a/kustomization.yaml", "resources: []\n")
	r.WriteFile("tenants/a/keep.enc", "kept\n")
	r.Commit("tree")
	r.Push()

	plain, _, err := f.git.Fetch(ctx, f.req(Ref{}), nil)
	g.Expect(err).NotTo(HaveOccurred())

	req := f.req(Ref{})
	req.Ignore = "# docs are not config\n/docs/\n*.enc\n!keep.enc\n"
	ignored, fetched, err := f.git.Fetch(ctx, req, &plain)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fetched).To(BeTrue(), "a changed ignore makes a new checkout of the same commit")
	g.Expect(ignored.Commit).To(Equal(plain.Commit))
	g.Expect(ignored.Dir).NotTo(Equal(plain.Dir))
	g.Expect(ignored.Digest).NotTo(Equal(plain.Digest))
	g.Expect(filepath.Join(ignored.Dir, "docs")).NotTo(BeAnExistingFile())
	g.Expect(filepath.Join(ignored.Dir, "tenants/a/secret.enc")).NotTo(BeAnExistingFile())
	g.Expect(filepath.Join(ignored.Dir, "tenants/a/keep.enc")).To(BeAnExistingFile())
	g.Expect(filepath.Join(ignored.Dir, "base/kustomization.yaml")).To(BeAnExistingFile())
	g.Expect(filepath.Join(plain.Dir, "docs/guide.md")).To(BeAnExistingFile())
}

func TestGit_Fetch_digestIsDeterministic(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t, gitserver.HTTPOptions{})
	r := f.repo
	r.WriteFile("z/last.yaml", "z\n")
	r.WriteFile("a.yaml", "a\n")
	r.WriteFile("a/b.yaml", "b\n")
	r.WriteFile("run.sh", "#!/bin/sh\n")
	g.Expect(os.Chmod(filepath.Join(r.Work, "run.sh"), 0o755)).To(Succeed())
	r.Symlink("link.yaml", "a/b.yaml")
	r.Commit("tree")
	r.Push()

	art1, _, err := f.git.Fetch(ctx, f.req(Ref{}), nil)
	g.Expect(err).NotTo(HaveOccurred())
	other := &Git{CacheDir: t.TempDir()}
	art2, _, err := other.Fetch(ctx, f.req(Ref{}), nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(art2.Digest).To(Equal(art1.Digest))
	g.Expect(art1.Digest).To(MatchRegexp(`^sha256:[0-9a-f]{64}$`))

	// The working clone, .git and all, digests the same as the checkout.
	g.Expect(Digest(r.Work)).To(Equal(art1.Digest))

	// Mode counts: the same bytes without the executable bit differ.
	g.Expect(os.Chmod(filepath.Join(r.Work, "run.sh"), 0o644)).To(Succeed())
	g.Expect(Digest(r.Work)).NotTo(Equal(art1.Digest))
}

func TestGit_Fetch_keepsTheLastN(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t, gitserver.HTTPOptions{})
	f.git.Keep = 3
	var last *Artifact
	var commits []string
	for i := range 5 {
		f.repo.WriteFile("n", strings.Repeat("x", i))
		commits = append(commits, f.repo.Commit("c"))
		f.repo.Push()
		art, fetched, err := f.git.Fetch(ctx, f.req(Ref{}), last)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(fetched).To(BeTrue())
		last = &art
	}
	g.Expect(artifacts(g, f.cache, "app")).To(ConsistOf(commits[2:]))
}

func TestGit_Fetch_checkoutIsAtomic(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newFixture(t, gitserver.HTTPOptions{})
	f.repo.WriteFile("ok.yaml", "ok\n")
	f.repo.Symlink("evil", "../../../../etc/passwd")
	f.repo.Commit("escape")
	f.repo.Push()

	_, _, err := f.git.Fetch(ctx, f.req(Ref{}), nil)
	g.Expect(ReasonOf(err)).To(Equal(SymlinkEscape))
	// A failed checkout leaves neither a partial artifact nor its
	// temporary directory.
	g.Expect(artifacts(g, f.cache, "app")).To(BeEmpty())
}

func TestGit_Fetch_symlinks(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(r *gitserver.Repo)
		wantErr bool
	}{
		{"A link within the checkout is kept.", func(r *gitserver.Repo) {
			r.WriteFile("base/a.yaml", "a\n")
			r.Symlink("tenants/t/a.yaml", "../../base/a.yaml")
		}, false},
		{"A relative link that climbs out is refused.", func(r *gitserver.Repo) {
			r.Symlink("tenants/t/a.yaml", "../../../secret")
		}, true},
		{"An absolute link is refused.", func(r *gitserver.Repo) {
			r.Symlink("passwd", "/etc/passwd")
		}, true},
		{"A link that climbs out through a link to a shallower directory is refused.", func(r *gitserver.Repo) {
			r.Symlink("d", ".")
			r.WriteFile("x/keep", "k\n")
			r.Symlink("e", "d/x/../..")
		}, true},
		{"A dangling link inside the checkout is harmless and kept.", func(r *gitserver.Repo) {
			r.Symlink("later.yaml", "not/yet/there.yaml")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t, gitserver.HTTPOptions{})
			f.repo.WriteFile("README", "r\n")
			tt.setup(f.repo)
			f.repo.Commit("links")
			f.repo.Push()
			art, _, err := f.git.Fetch(context.Background(), f.req(Ref{}), nil)
			if !tt.wantErr {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(art.Dir).To(BeADirectory())
				return
			}
			var se *Error
			g.Expect(errors.As(err, &se)).To(BeTrue(), "got %v", err)
			g.Expect(se.Reason).To(Equal(SymlinkEscape))
			g.Expect(err.Error()).To(ContainSubstring("points outside the checkout"))
		})
	}
}

func TestGit_Fetch_failures(t *testing.T) {
	f := newFixture(t, gitserver.HTTPOptions{})
	f.seed(t)
	empty := gitserver.NewRepo(t, filepath.Dir(filepath.Join(f.repo.Bare)), "empty.git")
	_ = empty
	closed := closedPort(t)
	tests := []struct {
		name   string
		url    string
		ref    Ref
		reason Reason
	}{
		{"A missing branch is RefNotFound.", f.url, Ref{Branch: "nope"}, RefNotFound},
		{"A missing tag is RefNotFound.", f.url, Ref{Tag: "v9.9.9"}, RefNotFound},
		{"A semver range that matches no tag is RefNotFound.", f.url, Ref{SemVer: ">=5.0.0"}, RefNotFound},
		{"A commit the remote does not have is RefNotFound.", f.url, Ref{Commit: strings.Repeat("ab", 20)}, RefNotFound},
		{"A repository with no commits is RefNotFound.", f.srv.URL + "/empty.git", Ref{}, RefNotFound},
		{"A malformed semver range is InvalidRef.", f.url, Ref{SemVer: "not a range"}, InvalidRef},
		{"A short commit is InvalidRef.", f.url, Ref{Commit: "abc123"}, InvalidRef},
		{"Two refs at once are InvalidRef.", f.url, Ref{Branch: "main", Tag: "v1.0.0"}, InvalidRef},
		{"A file URL is InvalidURL.", "file:///etc", Ref{}, InvalidURL},
		{"An ftp URL is InvalidURL.", "ftp://example.com/repo.git", Ref{}, InvalidURL},
		{"A closed port is FetchFailed.", "http://" + closed + "/app.git", Ref{}, FetchFailed},
		{"A repository the server does not have is FetchFailed.", f.srv.URL + "/missing.git", Ref{}, FetchFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _, err := f.git.Fetch(ctx, Request{Name: "fail", URL: tt.url, Ref: tt.ref}, nil)
			var se *Error
			g.Expect(errors.As(err, &se)).To(BeTrue(), "got %v", err)
			g.Expect(se.Reason).To(Equal(tt.reason), "got %v", err)
			g.Expect(se.Terminal()).To(Equal(tt.reason == InvalidURL || tt.reason == InvalidRef))
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestGit_Fetch_aHangingServerEndsWithTheContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Accept connections and never answer; closing them at the end
	// lets the abandoned client goroutines finish.
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	for _, url := range []string{"http://" + l.Addr().String() + "/app.git", "ssh://git@" + l.Addr().String() + "/app.git"} {
		t.Run(url, func(t *testing.T) {
			g := NewWithT(t)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			auth := &Auth{Identity: newSSHKey(t, "").pem, KnownHosts: []byte("example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")}
			git := &Git{CacheDir: t.TempDir()}
			_, _, err := git.Fetch(ctx, Request{URL: url, Auth: auth}, nil)
			g.Expect(ReasonOf(err)).To(Equal(FetchFailed), "got %v", err)
			g.Expect(errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline") || strings.Contains(err.Error(), "timeout")).
				To(BeTrue(), "got %v", err)
		})
	}
}
