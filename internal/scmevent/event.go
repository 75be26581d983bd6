package scmevent

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
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

// cloudRepo is a repository in a Bitbucket Cloud event.
type cloudRepo struct {
	FullName string `json:"full_name"`
	Links    struct {
		HTML struct {
			Href string `json:"href"`
		} `json:"html"`
	} `json:"links"`
}

// cloudPullRequest is a pull request in a Bitbucket Cloud event.
type cloudPullRequest struct {
	ID     int    `json:"id"`
	State  string `json:"state"`
	Source struct {
		Branch struct {
			Name string `json:"name"`
		} `json:"branch"`
		Commit struct {
			Hash string `json:"hash"`
		} `json:"commit"`
	} `json:"source"`
	Destination struct {
		Branch struct {
			Name string `json:"name"`
		} `json:"branch"`
	} `json:"destination"`
}

// cloudEvent is the part of a Bitbucket Cloud repo:push, pullrequest:… or
// pullrequest:comment_created event gyre reads.
type cloudEvent struct {
	Repository cloudRepo `json:"repository"`
	Push       struct {
		Changes []struct {
			// New is null when the change deleted the branch or tag.
			New *struct {
				Type   string `json:"type"`
				Name   string `json:"name"`
				Target struct {
					Hash string `json:"hash"`
				} `json:"target"`
			} `json:"new"`
			Old *struct {
				Type string `json:"type"`
				Name string `json:"name"`
			} `json:"old"`
		} `json:"changes"`
	} `json:"push"`
	PullRequest cloudPullRequest `json:"pullrequest"`
	Comment     struct {
		ID      int64 `json:"id"`
		Content struct {
			Raw string `json:"raw"`
		} `json:"content"`
	} `json:"comment"`
}

// cloudRef is the full ref of a Bitbucket Cloud branch or tag.
func cloudRef(typ, name string) string {
	switch typ {
	case "branch":
		return "refs/heads/" + name
	case "tag", "annotated_tag":
		return "refs/tags/" + name
	}
	return name
}

func parseCloud(eventType string, body []byte) (Event, error) {
	var p cloudEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, err
	}
	e := Event{Repo: p.Repository.FullName, URLs: cloudURLs(p.Repository)}
	switch eventType {
	case "repo:push":
		// One push may change several refs; the first that still exists
		// is the one built, as one GitHub event names one ref.
		for _, c := range p.Push.Changes {
			if c.New == nil {
				if c.Old != nil && e.Ref == "" {
					e.Ref, e.Deleted = cloudRef(c.Old.Type, c.Old.Name), true
				}
				continue
			}
			e.Ref, e.SHA, e.Deleted = cloudRef(c.New.Type, c.New.Name), c.New.Target.Hash, false
			e.Kind, e.Branch = refKind(e.Ref)
			break
		}
	case "pullrequest:created", "pullrequest:updated":
		pr := p.PullRequest
		if pr.State == "OPEN" {
			e.Kind = KindPullRequest
			e.Ref = "refs/heads/" + pr.Source.Branch.Name
			e.Branch, e.SHA = pr.Destination.Branch.Name, pr.Source.Commit.Hash
		}
	case "pullrequest:comment_created":
		pr := p.PullRequest
		if pr.State == "OPEN" {
			e.Kind = KindPullRequestComment
			e.Ref = "refs/heads/" + pr.Source.Branch.Name
			e.Branch, e.SHA = pr.Destination.Branch.Name, pr.Source.Commit.Hash
			e.Comment, e.CommentID = p.Comment.Content.Raw, strconv.FormatInt(p.Comment.ID, 10)
		}
	}
	return e, nil
}

// cloudURLs are the URLs a Bitbucket Cloud event gives its repository by.
// The event has no clone links, only the web page
// https://bitbucket.org/<workspace>/<slug>; the clone URLs are that with
// .git and git@bitbucket.org:<workspace>/<slug>.git, which a receiver's
// comparison reduces to the web URL and ssh://bitbucket.org/<workspace>/<slug>.
func cloudURLs(r cloudRepo) []string {
	html := r.Links.HTML.Href
	if html == "" {
		return nil
	}
	urls := []string{html}
	if u, err := url.Parse(html); err == nil && r.FullName != "" {
		urls = append(urls, "ssh://"+u.Hostname()+"/"+r.FullName)
	}
	return urls
}

// serverRepo is a repository in a Bitbucket Server event.
type serverRepo struct {
	Slug    string `json:"slug"`
	Project struct {
		Key string `json:"key"`
	} `json:"project"`
	Links struct {
		Clone []struct {
			Href string `json:"href"`
		} `json:"clone"`
	} `json:"links"`
}

// fullName is "PROJECT/slug", as Bitbucket Server's clone paths have it.
func (r serverRepo) fullName() string {
	if r.Slug == "" || r.Project.Key == "" {
		return ""
	}
	return r.Project.Key + "/" + r.Slug
}

// serverRef is one side of a Bitbucket Server pull request.
type serverRef struct {
	ID           string     `json:"id"`
	DisplayID    string     `json:"displayId"`
	LatestCommit string     `json:"latestCommit"`
	Repository   serverRepo `json:"repository"`
}

// serverEvent is the part of a Bitbucket Server repo:refs_changed or pr:…
// event gyre reads.
type serverEvent struct {
	Repository serverRepo `json:"repository"`
	Changes    []struct {
		Ref struct {
			ID        string `json:"id"`
			DisplayID string `json:"displayId"`
			Type      string `json:"type"`
		} `json:"ref"`
		RefID  string `json:"refId"`
		ToHash string `json:"toHash"`
		// Type is ADD, UPDATE or DELETE.
		Type string `json:"type"`
	} `json:"changes"`
	PullRequest struct {
		ID      int       `json:"id"`
		State   string    `json:"state"`
		FromRef serverRef `json:"fromRef"`
		ToRef   serverRef `json:"toRef"`
	} `json:"pullRequest"`
	Comment struct {
		ID   int64  `json:"id"`
		Text string `json:"text"`
	} `json:"comment"`
}

func parseServer(eventType string, body []byte) (Event, error) {
	var p serverEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, err
	}
	e := Event{Repo: p.Repository.fullName()}
	for _, c := range p.Repository.Links.Clone {
		e.URLs = append(e.URLs, c.Href)
	}
	pr := p.PullRequest
	switch eventType {
	case "diagnostics:ping":
		e.Kind = KindPing
	case "repo:refs_changed":
		for _, c := range p.Changes {
			ref := c.Ref.ID
			if ref == "" {
				ref = c.RefID
			}
			if c.Type == "DELETE" {
				if e.Ref == "" {
					e.Ref, e.Deleted = ref, true
				}
				continue
			}
			e.Ref, e.SHA, e.Deleted = ref, c.ToHash, false
			e.Kind, e.Branch = refKind(ref)
			break
		}
	case "pr:opened", "pr:from_ref_updated":
		// pr:modified is a new title, description or target branch, not
		// new code: like GitHub's "edited", it fires nothing.
		if pr.State == "OPEN" {
			e.Kind = KindPullRequest
		}
	case "pr:comment:added":
		if pr.State == "OPEN" {
			e.Kind = KindPullRequestComment
			e.Comment, e.CommentID = p.Comment.Text, strconv.FormatInt(p.Comment.ID, 10)
		}
	}
	if strings.HasPrefix(eventType, "pr:") {
		// A pull request event has no top-level repository; the target
		// side's is the one a trigger watches.
		e.Repo = pr.ToRef.Repository.fullName()
		for _, c := range pr.ToRef.Repository.Links.Clone {
			e.URLs = append(e.URLs, c.Href)
		}
	}
	if e.Kind == KindPullRequest || e.Kind == KindPullRequestComment {
		e.Ref = "refs/pull-requests/" + strconv.Itoa(pr.ID) + "/from"
		e.Branch, e.SHA = pr.ToRef.DisplayID, pr.FromRef.LatestCommit
	}
	return e, nil
}

// giteaEvent is the part of a Gitea push, pull_request or issue_comment
// event gyre reads.
type giteaEvent struct {
	Ref     string `json:"ref"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Action  string `json:"action"`
	// IsPull says an issue_comment is on a pull request.
	IsPull     bool `json:"is_pull"`
	Repository struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		SSHURL   string `json:"ssh_url"`
	} `json:"repository"`
	PullRequest struct {
		Number int    `json:"number"`
		State  string `json:"state"`
		Head   struct {
			SHA string `json:"sha"`
		} `json:"head"`
		Base struct {
			Ref string `json:"ref"`
		} `json:"base"`
	} `json:"pull_request"`
	Issue struct {
		Number int    `json:"number"`
		State  string `json:"state"`
		// PullRequest is set only when the issue is a pull request.
		PullRequest *struct{} `json:"pull_request"`
	} `json:"issue"`
	Comment struct {
		ID   int64  `json:"id"`
		Body string `json:"body"`
	} `json:"comment"`
}

func parseGitea(eventType string, body []byte) (Event, error) {
	var p giteaEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, err
	}
	r := p.Repository
	e := Event{Repo: r.FullName, URLs: []string{r.CloneURL, r.HTMLURL, r.SSHURL}}
	switch eventType {
	case "push":
		e.Ref = p.Ref
		if p.Deleted || strings.Trim(p.After, "0") == "" {
			e.Deleted = true
			break // a deleted branch or tag has nothing to build
		}
		e.Kind, e.Branch = refKind(p.Ref)
		e.SHA = p.After
	case "pull_request":
		// Gitea says "synchronized" for new commits; older releases,
		// like GitHub, "synchronize".
		switch p.Action {
		case "opened", "reopened", "synchronized", "synchronize":
			e.Kind = KindPullRequest
			e.Ref = "refs/pull/" + strconv.Itoa(p.PullRequest.Number) + "/head"
			e.Branch, e.SHA = p.PullRequest.Base.Ref, p.PullRequest.Head.SHA
		}
	case "issue_comment":
		// Gitea sends comments on pull requests as issue_comment; an
		// edited comment must not start the run a second time.
		if p.Action == "created" && (p.IsPull || p.Issue.PullRequest != nil) && p.Issue.State == "open" {
			e.Kind = KindPullRequestComment
			e.Comment, e.CommentID = p.Comment.Body, strconv.FormatInt(p.Comment.ID, 10)
			// The event names no commit: the run builds whatever the
			// head is when it fetches.
			e.Ref = "refs/pull/" + strconv.Itoa(p.Issue.Number) + "/head"
		}
	}
	return e, nil
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
