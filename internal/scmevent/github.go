package scmevent

import (
	"encoding/json"
	"strconv"
)

// githubEvent is the part of a GitHub push, pull_request, issue_comment
// or ping event gyre reads.
type githubEvent struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	Action     string `json:"action"`
	Repository struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		SSHURL   string `json:"ssh_url"`
		GitURL   string `json:"git_url"`
	} `json:"repository"`
	PullRequest struct {
		Number int `json:"number"`
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

func parseGitHub(eventType string, body []byte) (Event, error) {
	var p githubEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, err
	}
	r := p.Repository
	e := Event{Repo: r.FullName, URLs: []string{r.CloneURL, r.HTMLURL, r.SSHURL, r.GitURL}}
	switch eventType {
	case "ping":
		e.Kind = KindPing
	case "push":
		e.Ref = p.Ref
		if p.Deleted {
			e.Deleted = true
			break // a deleted branch or tag has nothing to build
		}
		e.Kind, e.Branch = refKind(p.Ref)
		e.SHA = p.After
	case "pull_request":
		switch p.Action {
		case "opened", "reopened", "synchronize":
			e.Kind = KindPullRequest
			e.Ref = "refs/pull/" + strconv.Itoa(p.PullRequest.Number) + "/head"
			e.Branch, e.SHA = p.PullRequest.Base.Ref, p.PullRequest.Head.SHA
		}
	case "issue_comment":
		// GitHub sends comments on plain issues as issue_comment too; an
		// edited comment must not start the run a second time.
		if p.Action == "created" && p.Issue.PullRequest != nil && p.Issue.State == "open" {
			e.Kind, e.Comment = KindPullRequestComment, p.Comment.Body
			e.CommentID = strconv.FormatInt(p.Comment.ID, 10)
			// The event names no commit and gyre holds no API token to ask
			// for one: the run builds whatever the head is when it fetches.
			e.Ref = "refs/pull/" + strconv.Itoa(p.Issue.Number) + "/head"
		}
	}
	return e, nil
}
