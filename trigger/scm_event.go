package trigger

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/scmevent"
)

// SCM providers.
const (
	providerGitHub = scmevent.GitHub
	providerGitLab = scmevent.GitLab
	// providerSVN is a Subversion server whose post-commit hook posts the
	// commit, as Cyclone's user guide has it do.
	providerSVN             = "svn"
	providerBitbucketCloud  = scmevent.BitbucketCloud
	providerBitbucketServer = scmevent.BitbucketServer
	providerGitea           = scmevent.Gitea
)

// Kinds of SCM events a trigger fires on.
const (
	eventPush        = "push"
	eventTag         = "tag"
	eventPullRequest = "pullRequest"
	// eventPullRequestComment is a new comment on an open pull or merge
	// request.
	eventPullRequestComment = "pullRequestComment"
	// eventPostCommit is a Subversion commit.
	eventPostCommit = "postCommit"
	// eventPing is GitHub's hello when a webhook is added: answered, never
	// fired on.
	eventPing = "ping"
)

// Global variables of the runs an SCM event starts.
const (
	// VarSCMEvent is push, tag, pullRequest, pullRequestComment or
	// postCommit.
	VarSCMEvent = "SCM_EVENT"
	// VarSCMRef is the Git ref: refs/heads/<branch>, refs/tags/<tag>,
	// refs/pull/<n>/head (GitHub) or refs/merge-requests/<n>/head (GitLab);
	// for a Subversion commit, its revision number.
	VarSCMRef = "SCM_REF"
	// VarSCMRevision is the commit SHA or Subversion revision number to
	// build, or the ref, such as refs/pull/<n>/head, for a pull request
	// comment whose event names no commit (GitHub's never do). It is also
	// set as the SCM_REVISION parameter of every Resource the trigger's
	// spec lists, which is what Cyclone's Git and SVN resolvers check out.
	VarSCMRevision = "SCM_REVISION"
	// VarSCMRepo is the repository's full name, "owner/repo", or the UUID
	// of a Subversion repository.
	VarSCMRepo = "SCM_REPO"
)

// scmEvent is the part of a GitHub, GitLab, Bitbucket, Gitea or
// Subversion event a trigger needs.
type scmEvent struct {
	provider string
	delivery string
	// kind is push, tag, pullRequest, pullRequestComment, postCommit or
	// ping; empty for events no trigger fires on.
	kind string
	repo string
	ref  string
	// branch is the pushed branch, or a pull request's target branch;
	// empty for a GitHub comment, whose event does not say.
	branch string
	// sha is empty for a GitHub comment, whose event does not say; the
	// run builds ref instead.
	sha string
	// comment is the body of a pull request comment.
	comment string
	// commentID is the SCM's id of the comment: two comments of the same
	// text are two requests, a replay of one is not.
	commentID string
	// changed are the paths a Subversion commit changed, relative to the
	// repository's root.
	changed []string
}

// maxDeliveryIDLength bounds the delivery id and event type headers.
const maxDeliveryIDLength = 128

// readEventHeaders detects the provider of a request and reads its event
// type and delivery id.
func readEventHeaders(h http.Header) (provider, eventType, delivery string, err error) {
	// Gitea sends GitHub's headers too: its own are asked first.
	if p, t, d, ok := scmevent.Detect(h); ok {
		if d == "" {
			return "", "", "", fmt.Errorf("%s event without its delivery id header (%s)", p, deliveryHeader(p))
		}
		provider, eventType, delivery = p, t, d
	}
	switch {
	case provider != "":
	case h.Get("X-GitHub-Event") != "":
		provider, eventType, delivery = providerGitHub, h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")
		if delivery == "" {
			return "", "", "", fmt.Errorf("X-GitHub-Delivery header missing")
		}
	case h.Get("X-Gitlab-Event") != "":
		provider, eventType, delivery = providerGitLab, h.Get("X-Gitlab-Event"), h.Get("X-Gitlab-Event-UUID")
		if delivery == "" {
			return "", "", "", fmt.Errorf("X-Gitlab-Event-UUID header missing")
		}
	case h.Get("X-Subversion-Event") != "":
		// A hook sends no delivery id; parseEvent makes one of the commit.
		provider, eventType = providerSVN, h.Get("X-Subversion-Event")
	default:
		return "", "", "", fmt.Errorf("none of the X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event, X-Event-Key and X-Subversion-Event headers is set")
	}
	// Every SCM sends a UUID; the id lands in an annotation of the
	// run, so a sender may not make it arbitrarily large.
	if len(delivery) > maxDeliveryIDLength || len(eventType) > maxDeliveryIDLength {
		return "", "", "", fmt.Errorf("delivery id or event type longer than %d bytes", maxDeliveryIDLength)
	}
	return provider, eventType, delivery, nil
}

// parseEvent reads an event body of a provider. It reads what any sender
// may claim; nothing of it is trusted before the signature is checked.
func parseEvent(provider, eventType string, body []byte) (scmEvent, error) {
	if provider == providerSVN {
		return parseSVN(eventType, body)
	}
	p, err := scmevent.Parse(provider, eventType, body)
	if err != nil {
		return scmEvent{}, err
	}
	e := scmEvent{provider: provider, kind: p.Kind, repo: p.Repo}
	switch p.Kind {
	case "", eventPing:
		if p.Kind == eventPing && p.Repo == "" {
			return e, nil // Bitbucket Server's test connection names no repository
		}
	default:
		e.ref, e.branch, e.sha = p.Ref, p.Branch, p.SHA
		e.comment, e.commentID = p.Comment, p.CommentID
	}
	return e, e.validate()
}

// deliveryHeader names the header that carries a provider's delivery id.
func deliveryHeader(provider string) string {
	switch provider {
	case providerBitbucketCloud:
		return "X-Request-UUID"
	case providerBitbucketServer:
		return "X-Request-Id"
	}
	return "X-Gitea-Delivery"
}

// svnPostCommit is the body the post-commit hook of Cyclone's user guide
// posts.
type svnPostCommit struct {
	RepoUUID string `json:"repoUUID"`
	Revision string `json:"revision"`
	// Changed is the output of "svnlook changed".
	Changed string `json:"changed"`
}

func parseSVN(eventType string, body []byte) (scmEvent, error) {
	var p svnPostCommit
	if err := json.Unmarshal(body, &p); err != nil {
		return scmEvent{}, fmt.Errorf("svn %s event: %w", eventType, err)
	}
	e := scmEvent{provider: providerSVN, repo: p.RepoUUID}
	if eventType != "Post-Commit" {
		return e, e.validate()
	}
	// Revision numbers only: the revision names the run and is handed to
	// the resolver, and "012" must be the same commit as "12".
	rev, err := strconv.ParseUint(p.Revision, 10, 64)
	if err != nil {
		return scmEvent{}, fmt.Errorf("svn %s event names no revision number", eventType)
	}
	e.kind = eventPostCommit
	e.ref = strconv.FormatUint(rev, 10)
	e.sha = e.ref
	e.changed = svnChangedFiles(p.Changed)
	// A commit happens once, so it identifies the delivery: a hook that
	// posts it again finds the run of the first post.
	e.delivery = p.RepoUUID + "/r" + e.ref
	if len(e.delivery) > maxDeliveryIDLength {
		return scmEvent{}, fmt.Errorf("svn repository uuid longer than %d bytes", maxDeliveryIDLength)
	}
	return e, e.validate()
}

// svnChangedFiles reads the paths out of "svnlook changed" output, whose
// lines are a status and a path: "U   trunk/README.txt". As in Cyclone,
// a line that is not exactly two fields is skipped, so a path with a space
// in it counts as unchanged.
func svnChangedFiles(changed string) []string {
	var files []string
	for line := range strings.Lines(changed) {
		if f := strings.Fields(line); len(f) == 2 {
			files = append(files, f[1])
		}
	}
	return files
}

// validate refuses an event that names no repository, or that would fire
// with nothing to build: a comment may name only its pull request's ref,
// every other event must name a commit.
func (e scmEvent) validate() error {
	if e.repo == "" {
		return fmt.Errorf("%s event names no repository", e.provider)
	}
	switch {
	case e.kind == "" || e.kind == eventPing:
	case e.kind == eventPullRequestComment && e.ref != "":
	case e.sha == "":
		return fmt.Errorf("%s %s event names no commit", e.provider, e.kind)
	}
	return nil
}

// revision is what a run started by e checks out: the commit, or the ref
// when the event names no commit.
func (e scmEvent) revision() string {
	if e.sha == "" {
		return e.ref
	}
	return e.sha
}

// sameRepo reports whether a trigger's spec.scm.repo names the repository
// of an event of provider. Case and a server URL or ".git" suffix in the
// spec are ignored: "https://github.com/Owner/Repo.git" names "owner/repo".
// A Subversion repository is named by its UUID alone, in any case.
func sameRepo(provider, spec, repo string) bool {
	if provider == providerSVN {
		return spec != "" && strings.EqualFold(spec, repo)
	}
	spec = strings.TrimSuffix(strings.Trim(spec, "/"), ".git")
	if i := strings.Index(spec, "://"); i >= 0 {
		rest := spec[i+3:]
		if j := strings.Index(rest, "/"); j >= 0 {
			spec = rest[j+1:]
		}
	}
	return spec != "" && strings.EqualFold(spec, strings.Trim(repo, "/"))
}

// matches reports whether policy fires on e.
func matches(policy cyclonev1alpha1.SCMTriggerPolicy, e scmEvent) bool {
	switch e.kind {
	case eventPush:
		return policy.Push.Enabled && branchMatches(policy.Push.Branches, e.branch)
	case eventTag:
		return policy.TagRelease.Enabled
	case eventPullRequest:
		return policy.PullRequest.Enabled && branchMatches(policy.PullRequest.Branches, e.branch)
	case eventPullRequestComment:
		// Cyclone fires on a listed comment even when enabled is false;
		// gyre asks for enabled as for every other kind of event, so that
		// turning a policy off always stops it.
		return policy.PullRequestComment.Enabled && commentMatches(policy.PullRequestComment.Comments, e.comment)
	case eventPostCommit:
		return policy.PostCommit.Enabled && postCommitMatches(policy.PostCommit, e.changed)
	}
	return false
}

// postCommitMatches reports whether a commit that changed files concerns
// the workflow of p. It keeps Cyclone's rule, so that a trigger fires on
// the same commits in both: any commit when rootURL, workflowURL or the
// changed files are missing, else one where rootURL + "/" + a changed
// file contains workflowURL.
func postCommitMatches(p cyclonev1alpha1.SCMTriggerPostCommit, files []string) bool {
	if p.RootURL == "" || p.WorkflowURL == "" || len(files) == 0 {
		return true
	}
	for _, f := range files {
		if strings.Contains(p.RootURL+"/"+f, p.WorkflowURL) {
			return true
		}
	}
	return false
}

// commentMatches reports whether comment is one of comments, ignoring
// surrounding whitespace on both sides: GitHub keeps the "\r\n" of a body
// that ends in a line break. An empty list matches no comment.
func commentMatches(comments []string, comment string) bool {
	comment = strings.TrimSpace(comment)
	for _, c := range comments {
		if strings.TrimSpace(c) == comment {
			return true
		}
	}
	return false
}

// branchMatches reports whether branch is one of patterns, which may be
// path.Match globs such as "release/*"; no patterns match every branch.
func branchMatches(patterns []string, branch string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, branch); ok || p == branch {
			return true
		}
	}
	return false
}

// variables are the global variables of a run started by e.
func (e scmEvent) variables() []cyclonev1alpha1.GlobalVariable {
	return []cyclonev1alpha1.GlobalVariable{
		{Name: VarSCMEvent, Value: e.kind},
		{Name: VarSCMRef, Value: e.ref},
		{Name: VarSCMRevision, Value: e.revision()},
		{Name: VarSCMRepo, Value: e.repo},
	}
}
