package source

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/go-git/go-git/v5/plumbing"
)

// Ref says what to follow in a repository; exactly one field is set. The
// zero Ref follows the branch "main".
type Ref struct {
	// Branch follows the tip of a branch.
	Branch string
	// Tag checks out a tag, annotated or lightweight.
	Tag string
	// SemVer checks out the highest tag in a version range such as
	// ">=1.2.0 <2.0.0"; tags may carry a "v" prefix.
	SemVer string
	// Commit checks out one full 40-character SHA-1.
	Commit string
}

// DefaultBranch is what the zero Ref follows.
const DefaultBranch = "main"

var sha1Pattern = regexp.MustCompile(`^[0-9a-f]{40}$`)

// validate checks that exactly one field is set and well formed, and
// fills in the default branch.
func (r Ref) validate() (Ref, error) {
	n := 0
	for _, s := range []string{r.Branch, r.Tag, r.SemVer, r.Commit} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return Ref{Branch: DefaultBranch}, nil
	case n > 1:
		return r, errors.New("ref sets more than one of branch, tag, semver and commit")
	case r.Commit != "" && !sha1Pattern.MatchString(r.Commit):
		return r, fmt.Errorf("commit %q is not a full lowercase SHA-1", r.Commit)
	case r.SemVer != "":
		if _, err := semver.NewConstraint(r.SemVer); err != nil {
			return r, fmt.Errorf("semver range %q: %w", r.SemVer, err)
		}
	case r.Branch != "" && !plumbing.NewBranchReferenceName(r.Branch).IsBranch():
		return r, fmt.Errorf("branch %q is not a valid name", r.Branch)
	}
	return r, nil
}

// String names the ref as a user would: "branch main", "semver ~1.2".
func (r Ref) String() string {
	switch {
	case r.Tag != "":
		return "tag " + r.Tag
	case r.SemVer != "":
		return "semver " + r.SemVer
	case r.Commit != "":
		return "commit " + r.Commit
	case r.Branch != "":
		return "branch " + r.Branch
	}
	return "branch " + DefaultBranch
}

// Revision formats an artifact revision: "<name>@sha1:<commit>", or
// "sha1:<commit>" when name is empty (an exact commit).
func Revision(name, commit string) string {
	if name == "" {
		return "sha1:" + commit
	}
	return name + "@sha1:" + commit
}

// CommitOf returns the commit of a revision made by Revision, or "" if
// rev has no "sha1:" part.
func CommitOf(rev string) string {
	i := strings.LastIndex(rev, "sha1:")
	if i < 0 {
		return ""
	}
	return rev[i+len("sha1:"):]
}

// listing indexes a remote's advertised refs: each name to the commit it
// finally points at (annotated tags peeled).
type listing map[plumbing.ReferenceName]plumbing.Hash

// newListing indexes refs listed with peeling appended: an annotated tag
// appears twice, as the tag object and as "<name>^{}" with its commit; the
// peeled entry wins.
func newListing(refs []*plumbing.Reference) listing {
	l := listing{}
	peeled := map[plumbing.ReferenceName]bool{}
	for _, r := range refs {
		if r.Type() != plumbing.HashReference {
			continue
		}
		name := r.Name().String()
		if base, ok := strings.CutSuffix(name, "^{}"); ok {
			l[plumbing.ReferenceName(base)] = r.Hash()
			peeled[plumbing.ReferenceName(base)] = true
			continue
		}
		if !peeled[r.Name()] {
			l[r.Name()] = r.Hash()
		}
	}
	return l
}

// target is a resolved ref: the commit, the short name used in the
// revision, and the full reference to fetch ("" for an exact commit that
// is no ref's tip).
type target struct {
	commit  string
	name    string
	refName plumbing.ReferenceName
}

// candidate is a tag that matches a semver range.
type candidate struct {
	tag     string
	version *semver.Version
	commit  string
}

// resolve finds ref in the listing. For a semver range whose highest
// version is carried by tags on different commits, it returns those
// candidates and a zero target; the caller breaks the tie by commit time.
func (l listing) resolve(ref Ref) (target, []candidate, error) {
	switch {
	case ref.Commit != "":
		// A commit that is some ref's tip can be fetched through that ref.
		for _, name := range l.sortedNames() {
			if l[name].String() == ref.Commit && (name.IsBranch() || name.IsTag()) {
				return target{commit: ref.Commit, refName: name}, nil, nil
			}
		}
		return target{commit: ref.Commit}, nil, nil
	case ref.Tag != "":
		name := plumbing.NewTagReferenceName(ref.Tag)
		h, ok := l[name]
		if !ok {
			return target{}, nil, fmt.Errorf("tag %q not found", ref.Tag)
		}
		return target{commit: h.String(), name: ref.Tag, refName: name}, nil, nil
	case ref.SemVer != "":
		return l.resolveSemVer(ref.SemVer)
	default:
		name := plumbing.NewBranchReferenceName(ref.Branch)
		h, ok := l[name]
		if !ok {
			return target{}, nil, fmt.Errorf("branch %q not found", ref.Branch)
		}
		return target{commit: h.String(), name: ref.Branch, refName: name}, nil, nil
	}
}

func (l listing) resolveSemVer(rng string) (target, []candidate, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return target{}, nil, err
	}
	var best []candidate
	for _, name := range l.sortedNames() {
		if !name.IsTag() {
			continue
		}
		tag := name.Short()
		v, err := semver.NewVersion(tag)
		if err != nil || !c.Check(v) {
			continue
		}
		cand := candidate{tag: tag, version: v, commit: l[name].String()}
		switch {
		case len(best) == 0 || v.GreaterThan(best[0].version):
			best = []candidate{cand}
		case v.Equal(best[0].version):
			best = append(best, cand)
		}
	}
	if len(best) == 0 {
		return target{}, nil, fmt.Errorf("no tag matches semver range %q", rng)
	}
	for _, b := range best[1:] {
		if b.commit != best[0].commit {
			return target{}, best, nil
		}
	}
	// Equal versions on one commit: the names differ only in spelling
	// ("v1.2.0", "1.2.0"); take the first in name order for a stable
	// revision.
	return best[0].target(), nil, nil
}

func (c candidate) target() target {
	return target{commit: c.commit, name: c.tag, refName: plumbing.NewTagReferenceName(c.tag)}
}

// breakTie picks, among equal versions, the tag on the newest commit;
// equal commit times fall back to name order, so the choice is stable.
func breakTie(cands []candidate, commitTime func(commit string) int64) target {
	sorted := append([]candidate(nil), cands...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ti, tj := commitTime(sorted[i].commit), commitTime(sorted[j].commit)
		if ti != tj {
			return ti > tj
		}
		return sorted[i].tag < sorted[j].tag
	})
	return sorted[0].target()
}

func (l listing) sortedNames() []plumbing.ReferenceName {
	names := make([]plumbing.ReferenceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
