package agent

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// gitResource is a Git Resource, with Cyclone's parameters: SCM_URL,
// SCM_REPO, SCM_REVISION, SCM_AUTH, SCM_USER and SCM_TYPE.
type gitResource struct {
	url      string
	revision string
	auth     transport.AuthMethod
}

// commitID matches a full commit hash.
var commitID = regexp.MustCompile(`^[0-9a-f]{40}$`)

func newGitResource(getenv func(string) string) (*gitResource, error) {
	g := &gitResource{url: getenv("SCM_URL"), revision: getenv("SCM_REVISION")}
	if g.url == "" {
		return nil, errors.New("git resource: parameter SCM_URL is not set")
	}
	if g.revision == "" {
		return nil, errors.New("git resource: parameter SCM_REVISION is not set")
	}
	if repo := getenv("SCM_REPO"); repo != "" {
		g.url = strings.TrimSuffix(g.url, "/") + "/" + repo + ".git"
	}
	if u, err := url.Parse(g.url); err == nil && u.User != nil {
		// Credentials belong in SCM_AUTH; keeping them out of the URL
		// keeps them out of the checkout's .git/config too.
		return nil, errors.New("git resource: SCM_URL carries credentials; give them in SCM_AUTH")
	}
	// A composite revision "<source>:<target>" asks Cyclone's resolver to
	// merge source into target; gyre's resolver does not merge.
	if src, dst, ok := strings.Cut(g.revision, ":"); ok {
		if src != dst {
			return nil, fmt.Errorf("git resource: SCM_REVISION %q asks to merge %s into %s, which gyre's Git resolver does not do; give a single revision such as refs/pull/1/merge, or set the Resource's spec.resolver to Cyclone's Git resolver image", g.revision, src, dst)
		}
		g.revision = src
	}
	if auth := getenv("SCM_AUTH"); auth != "" {
		user, password, ok := strings.Cut(auth, ":")
		if !ok {
			// A token: GitLab and GitHub take any user name with it;
			// Bitbucket needs the real one.
			user, password = "oauth2", auth
			if getenv("SCM_TYPE") == "Bitbucket" && getenv("SCM_USER") != "" {
				user = getenv("SCM_USER")
			}
		}
		g.auth = &githttp.BasicAuth{Username: user, Password: password}
	}
	return g, nil
}

func (g *gitResource) fetch(ctx context.Context, dir string) error {
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		return fmt.Errorf("git resource: init %s: %w", dir, err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{g.url}}); err != nil {
		return fmt.Errorf("git resource: %w", err)
	}
	return g.checkout(ctx, repo, false)
}

func (g *gitResource) update(ctx context.Context, dir string) error {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return fmt.Errorf("git resource: the persistent data in %s is not a Git repository: %w", dir, err)
	}
	remote, err := repo.Remote(git.DefaultRemoteName)
	if err != nil || len(remote.Config().URLs) == 0 || remote.Config().URLs[0] != g.url {
		return fmt.Errorf("git resource: the persistent data in %s is not a clone of %s", dir, g.url)
	}
	return g.checkout(ctx, repo, true)
}

// checkout fetches the revision from origin, one commit deep, and checks
// it out as a detached HEAD; incremental keeps untracked files.
func (g *gitResource) checkout(ctx context.Context, repo *git.Repository, incremental bool) error {
	remote, err := repo.Remote(git.DefaultRemoteName)
	if err != nil {
		return fmt.Errorf("git resource: %w", err)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: g.auth})
	if err != nil {
		return fmt.Errorf("git resource: list %s: %w", g.url, err)
	}
	var spec config.RefSpec
	local := plumbing.ReferenceName("refs/gyre/revision")
	if name, ok := matchRef(refs, g.revision); ok {
		spec = config.RefSpec("+" + name.String() + ":" + local.String())
	} else if commitID.MatchString(g.revision) {
		spec = config.RefSpec(g.revision + ":" + local.String())
	} else {
		return fmt.Errorf("git resource: %s has no branch, tag or ref %q", g.url, g.revision)
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: git.DefaultRemoteName,
		RefSpecs:   []config.RefSpec{spec},
		Depth:      1,
		Auth:       g.auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("git resource: fetch %s from %s: %w", g.revision, g.url, err)
	}
	ref, err := repo.Reference(local, true)
	if err != nil {
		return fmt.Errorf("git resource: fetch %s from %s: %w", g.revision, g.url, err)
	}
	hash := ref.Hash()
	if tag, err := repo.TagObject(hash); err == nil {
		c, err := tag.Commit()
		if err != nil {
			return fmt.Errorf("git resource: tag %s: %w", g.revision, err)
		}
		hash = c.Hash
	}
	wt, err := repo.Worktree()
	if err != nil {
		return fmt.Errorf("git resource: %w", err)
	}
	if !incremental {
		err = wt.Checkout(&git.CheckoutOptions{Hash: hash, Force: true})
	} else {
		// go-git's forced checkout removes untracked files, and those
		// (build caches, dependencies) are what a persistent resource
		// is kept for; a merge reset keeps them, as "git checkout" does.
		err = wt.Reset(&git.ResetOptions{Commit: hash, Mode: git.MergeReset})
	}
	if err != nil {
		return fmt.Errorf("git resource: check out %s: %w", g.revision, err)
	}
	return nil
}

// matchRef finds the ref a revision names: itself when it is a full ref
// name, else the branch, else the tag of that name.
func matchRef(refs []*plumbing.Reference, revision string) (plumbing.ReferenceName, bool) {
	names := map[plumbing.ReferenceName]bool{}
	for _, r := range refs {
		names[r.Name()] = true
	}
	for _, n := range []string{revision, "refs/heads/" + revision, "refs/tags/" + revision} {
		if name := plumbing.ReferenceName(n); names[name] && strings.HasPrefix(n, "refs/") {
			return name, true
		}
	}
	return "", false
}

// results reports the commit checked out, under Cyclone's key.
func (g *gitResource) results(dir string) ([]string, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("git resource: %w", err)
	}
	head, err := repo.Head()
	if err != nil {
		return nil, fmt.Errorf("git resource: %w", err)
	}
	return []string{"LastCommitID:" + head.Hash().String()}, nil
}

func (g *gitResource) push(context.Context, string) error {
	return errors.New("git resource: pushing is not supported (Cyclone's Git resolver does not push either)")
}
