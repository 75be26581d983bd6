package scmevent

import (
	"fmt"
	"strings"
)

// Kinds of events, as WorkflowTriggers name them.
const (
	KindPush               = "push"
	KindTag                = "tag"
	KindPullRequest        = "pullRequest"
	KindPullRequestComment = "pullRequestComment"
	// KindPing is a sender's hello: answered, never fired on.
	KindPing = "ping"
)

// maxURLs bounds the repository URLs taken from one event: a forged body
// may not make a receiver compare without end.
const maxURLs = 16

// Event is what gyre needs of a webhook event.
type Event struct {
	Provider  string
	EventType string
	// Kind is push, tag, pullRequest, pullRequestComment or ping; empty
	// for events nothing fires on, a deleted branch or tag among them.
	Kind string
	// Repo is the repository's full name: "workspace/slug" on Bitbucket
	// Cloud, "PROJECT/slug" on Bitbucket Server, "owner/name" on Gitea.
	Repo string
	// URLs are the repository's clone and web URLs the event gives.
	URLs []string
	// Ref is the pushed ref, or a pull request's: refs/pull/<n>/head on
	// GitHub and Gitea, refs/merge-requests/<n>/head on GitLab,
	// refs/pull-requests/<n>/from on Bitbucket Server, and on Bitbucket
	// Cloud, which keeps no pull request refs, the source branch's
	// refs/heads/<branch>.
	Ref string
	// Branch is the pushed branch, or a pull request's target branch.
	Branch string
	// SHA is the pushed commit or a pull request's head; empty when the
	// event names none (a GitHub or Gitea comment) or the ref was deleted.
	// Bitbucket Cloud names a pull request's head by a 12-digit prefix.
	SHA string
	// Deleted says the push deleted Ref.
	Deleted bool
	// Comment and CommentID are a pull request comment's body and the
	// SCM's id of it.
	Comment, CommentID string
}

// Parse reads an event body of provider, which Detect gave with
// eventType.
func Parse(provider, eventType string, body []byte) (Event, error) {
	var e Event
	var err error
	switch provider {
	case GitHub:
		e, err = parseGitHub(eventType, body)
	case GitLab:
		e, err = parseGitLab(eventType, body)
	case BitbucketCloud:
		e, err = parseCloud(eventType, body)
	case BitbucketServer:
		e, err = parseServer(eventType, body)
	case Gitea:
		e, err = parseGitea(eventType, body)
	default:
		return Event{}, fmt.Errorf("unknown provider %q", provider)
	}
	if err != nil {
		return Event{}, fmt.Errorf("parse %s %s event: %w", provider, eventType, err)
	}
	// Whether an event names enough is for its reader to say: a trigger
	// needs the repository's name and a commit, a receiver only the
	// repository's URLs.
	e.Provider, e.EventType = provider, eventType
	e.URLs = nonEmpty(e.URLs...)
	return e, nil
}

// refKind says whether a pushed ref is a branch or a tag, and the branch.
func refKind(ref string) (kind, branch string) {
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return KindPush, b
	}
	if strings.HasPrefix(ref, "refs/tags/") {
		return KindTag, ""
	}
	return "", ""
}

// nonEmpty returns the strings that are not empty, at most maxURLs.
func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" && len(out) < maxURLs {
			out = append(out, s)
		}
	}
	return out
}
