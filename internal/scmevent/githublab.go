package scmevent

import (
	"encoding/json"
	"strconv"
	"strings"
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

// gitlabEvent is the part of a GitLab push, tag push, merge request or
// note event gyre reads.
type gitlabEvent struct {
	Ref         string `json:"ref"`
	After       string `json:"after"`
	CheckoutSHA string `json:"checkout_sha"`
	Project     struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitHTTPURL        string `json:"git_http_url"`
		GitSSHURL         string `json:"git_ssh_url"`
		WebURL            string `json:"web_url"`
	} `json:"project"`
	Repository struct {
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
		Homepage   string `json:"homepage"`
	} `json:"repository"`
	ObjectAttributes struct {
		ID           int64  `json:"id"`
		IID          int    `json:"iid"`
		Action       string `json:"action"`
		Oldrev       string `json:"oldrev"`
		TargetBranch string `json:"target_branch"`
		LastCommit   struct {
			ID string `json:"id"`
		} `json:"last_commit"`
		Note         string `json:"note"`
		NoteableType string `json:"noteable_type"`
	} `json:"object_attributes"`
	// MergeRequest is the merge request a note is on.
	MergeRequest struct {
		IID          int    `json:"iid"`
		State        string `json:"state"`
		TargetBranch string `json:"target_branch"`
		LastCommit   struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"merge_request"`
}

func parseGitLab(eventType string, body []byte) (Event, error) {
	var p gitlabEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, err
	}
	e := Event{Repo: p.Project.PathWithNamespace, URLs: []string{
		p.Project.GitHTTPURL, p.Project.GitSSHURL, p.Project.WebURL,
		p.Repository.GitHTTPURL, p.Repository.GitSSHURL, p.Repository.Homepage,
	}}
	switch eventType {
	case "Push Hook", "Tag Push Hook":
		e.Ref = p.Ref
		if p.CheckoutSHA == "" || strings.Trim(p.After, "0") == "" {
			e.Deleted = true
			break // a deleted branch or tag has nothing to build
		}
		e.Kind, e.Branch = refKind(p.Ref)
		e.SHA = p.CheckoutSHA
	case "Merge Request Hook":
		a := p.ObjectAttributes
		// An update without oldrev changed the title or labels, not code.
		if a.Action == "open" || a.Action == "reopen" || (a.Action == "update" && a.Oldrev != "") {
			e.Kind = KindPullRequest
			e.Ref = "refs/merge-requests/" + strconv.Itoa(a.IID) + "/head"
			e.Branch, e.SHA = a.TargetBranch, a.LastCommit.ID
		}
	case "Note Hook":
		a, mr := p.ObjectAttributes, p.MergeRequest
		// Older GitLab sends no action; "update" is an edited note, which
		// must not start the run a second time.
		created := a.Action == "create" || a.Action == ""
		if a.NoteableType == "MergeRequest" && created && mr.State == "opened" {
			e.Kind, e.Comment = KindPullRequestComment, a.Note
			e.CommentID = strconv.FormatInt(a.ID, 10)
			e.Ref = "refs/merge-requests/" + strconv.Itoa(mr.IID) + "/head"
			e.Branch, e.SHA = mr.TargetBranch, mr.LastCommit.ID
		}
	}
	return e, nil
}
