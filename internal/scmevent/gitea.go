package scmevent

import (
	"encoding/json"
	"strconv"
	"strings"
)

// giteaEvent is the part of a Gitea push, pull_request or issue_comment
// event gyre reads: Gitea sends GitHub's payload shapes, and one field
// more.
type giteaEvent struct {
	githubEvent
	// IsPull says an issue_comment is on a pull request.
	IsPull bool `json:"is_pull"`
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
