package trigger

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// SCM providers.
const (
	providerGitHub = "github"
	providerGitLab = "gitlab"
)

// Kinds of SCM events a trigger fires on.
const (
	eventPush        = "push"
	eventTag         = "tag"
	eventPullRequest = "pullRequest"
	// eventPing is GitHub's hello when a webhook is added: answered, never
	// fired on.
	eventPing = "ping"
)

// Global variables of the runs an SCM event starts.
const (
	// VarSCMEvent is push, tag or pullRequest.
	VarSCMEvent = "SCM_EVENT"
	// VarSCMRef is the Git ref: refs/heads/<branch>, refs/tags/<tag>,
	// refs/pull/<n>/head (GitHub) or refs/merge-requests/<n>/head (GitLab).
	VarSCMRef = "SCM_REF"
	// VarSCMRevision is the commit SHA to build. It is also set as the
	// SCM_REVISION parameter of every Resource the trigger's spec lists,
	// which is what Cyclone's Git resolver checks out.
	VarSCMRevision = "SCM_REVISION"
	// VarSCMRepo is the repository's full name, "owner/repo".
	VarSCMRepo = "SCM_REPO"
)

// scmEvent is the part of a GitHub or GitLab event a trigger needs.
type scmEvent struct {
	provider string
	delivery string
	// kind is push, tag, pullRequest or ping; empty for events no trigger
	// fires on.
	kind string
	repo string
	ref  string
	// branch is the pushed branch, or a pull request's target branch.
	branch string
	sha    string
}

// maxDeliveryIDLength bounds the delivery id and event type headers.
const maxDeliveryIDLength = 128

// readEventHeaders detects the provider of a request and reads its event
// type and delivery id.
func readEventHeaders(h http.Header) (provider, eventType, delivery string, err error) {
	switch {
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
	default:
		return "", "", "", fmt.Errorf("neither X-GitHub-Event nor X-Gitlab-Event header is set")
	}
	// Both send UUIDs; the id lands in an annotation of the run, so a
	// sender may not make it arbitrarily large.
	if len(delivery) > maxDeliveryIDLength || len(eventType) > maxDeliveryIDLength {
		return "", "", "", fmt.Errorf("delivery id or event type longer than %d bytes", maxDeliveryIDLength)
	}
	return provider, eventType, delivery, nil
}

// parseEvent reads an event body of a provider. It reads what any sender
// may claim; nothing of it is trusted before the signature is checked.
func parseEvent(provider, eventType string, body []byte) (scmEvent, error) {
	if provider == providerGitHub {
		return parseGitHub(eventType, body)
	}
	return parseGitLab(eventType, body)
}

type githubEvent struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	Action     string `json:"action"`
	Repository struct {
		FullName string `json:"full_name"`
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
}

func parseGitHub(eventType string, body []byte) (scmEvent, error) {
	var p githubEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return scmEvent{}, fmt.Errorf("github %s event: %w", eventType, err)
	}
	e := scmEvent{provider: providerGitHub, repo: p.Repository.FullName}
	switch eventType {
	case "ping":
		e.kind = eventPing
	case "push":
		if p.Deleted {
			break // a deleted branch or tag has nothing to build
		}
		e.kind, e.branch = refKind(p.Ref)
		e.ref, e.sha = p.Ref, p.After
	case "pull_request":
		switch p.Action {
		case "opened", "reopened", "synchronize":
			e.kind = eventPullRequest
			e.ref = "refs/pull/" + strconv.Itoa(p.PullRequest.Number) + "/head"
			e.branch, e.sha = p.PullRequest.Base.Ref, p.PullRequest.Head.SHA
		}
	}
	return e, e.validate()
}

type gitlabEvent struct {
	Ref         string `json:"ref"`
	After       string `json:"after"`
	CheckoutSHA string `json:"checkout_sha"`
	Project     struct {
		PathWithNamespace string `json:"path_with_namespace"`
	} `json:"project"`
	ObjectAttributes struct {
		IID          int    `json:"iid"`
		Action       string `json:"action"`
		Oldrev       string `json:"oldrev"`
		TargetBranch string `json:"target_branch"`
		LastCommit   struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
}

func parseGitLab(eventType string, body []byte) (scmEvent, error) {
	var p gitlabEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return scmEvent{}, fmt.Errorf("gitlab %s: %w", eventType, err)
	}
	e := scmEvent{provider: providerGitLab, repo: p.Project.PathWithNamespace}
	switch eventType {
	case "Push Hook", "Tag Push Hook":
		if p.CheckoutSHA == "" || strings.Trim(p.After, "0") == "" {
			break // a deleted branch or tag has nothing to build
		}
		e.kind, e.branch = refKind(p.Ref)
		e.ref, e.sha = p.Ref, p.CheckoutSHA
	case "Merge Request Hook":
		a := p.ObjectAttributes
		// An update without oldrev changed the title or labels, not code.
		if a.Action == "open" || a.Action == "reopen" || (a.Action == "update" && a.Oldrev != "") {
			e.kind = eventPullRequest
			e.ref = "refs/merge-requests/" + strconv.Itoa(a.IID) + "/head"
			e.branch, e.sha = a.TargetBranch, a.LastCommit.ID
		}
	}
	return e, e.validate()
}

// refKind says whether a pushed ref is a branch or a tag, and the branch.
func refKind(ref string) (kind, branch string) {
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		return eventPush, strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/"):
		return eventTag, ""
	}
	return "", ""
}

// validate refuses an event that names no repository, or that would fire
// with no commit to build.
func (e scmEvent) validate() error {
	if e.repo == "" {
		return fmt.Errorf("%s event names no repository", e.provider)
	}
	if e.kind != "" && e.kind != eventPing && e.sha == "" {
		return fmt.Errorf("%s %s event names no commit", e.provider, e.kind)
	}
	return nil
}

// sameRepo reports whether a trigger's spec.scm.repo names the repository
// of an event. Case and a server URL or ".git" suffix in the spec are
// ignored: "https://github.com/Owner/Repo.git" names "owner/repo".
func sameRepo(spec, repo string) bool {
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
		{Name: VarSCMRevision, Value: e.sha},
		{Name: VarSCMRepo, Value: e.repo},
	}
}
