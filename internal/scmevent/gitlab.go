package scmevent

import (
	"encoding/json"
	"strconv"
	"strings"
)

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
