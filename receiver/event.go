package receiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gyreops/gyre/internal/hooksig"
)

// Git servers whose push events the Receiver reads.
const (
	ProviderGitHub    = "github"
	ProviderGitLab    = "gitlab"
	ProviderBitbucket = "bitbucket"
	ProviderGitea     = "gitea"
)

// kinds of events, as the Receiver treats them.
const (
	kindPush   = "push"
	kindPing   = "ping"
	kindIgnore = ""
)

// maxHeaderValue bounds the event type and delivery id taken from
// headers, which end up in logs.
const maxHeaderValue = 128

// pushEvent is what the Receiver needs of an event.
type pushEvent struct {
	provider string
	// eventType is the provider's name of the event, from its header.
	eventType string
	delivery  string
	// kind is push, ping or empty for events that ask for nothing.
	kind string
	// urls are every URL the event gives its repository by: clone, web
	// and SSH.
	urls []string
	// ref and sha are the pushed ref and its new commit; a push of
	// several refs (Bitbucket) gives the first.
	ref, sha string
}

// readHeaders detects the provider of a request and reads its event type
// and delivery id. Gitea also sends GitHub's and Gogs' headers, so it is
// told apart first.
func readHeaders(h http.Header) (pushEvent, error) {
	var e pushEvent
	switch {
	case h.Get("X-Gitea-Event") != "":
		e = pushEvent{provider: ProviderGitea, eventType: h.Get("X-Gitea-Event"), delivery: h.Get("X-Gitea-Delivery")}
	case h.Get("X-GitHub-Event") != "":
		e = pushEvent{provider: ProviderGitHub, eventType: h.Get("X-GitHub-Event"), delivery: h.Get("X-GitHub-Delivery")}
	case h.Get("X-Gitlab-Event") != "":
		e = pushEvent{provider: ProviderGitLab, eventType: h.Get("X-Gitlab-Event"), delivery: h.Get("X-Gitlab-Event-UUID")}
	case h.Get("X-Event-Key") != "":
		// Bitbucket Cloud sends X-Request-UUID, Bitbucket Server
		// X-Request-Id.
		delivery := h.Get("X-Request-UUID")
		if delivery == "" {
			delivery = h.Get("X-Request-Id")
		}
		e = pushEvent{provider: ProviderBitbucket, eventType: h.Get("X-Event-Key"), delivery: delivery}
	default:
		return e, errors.New("none of the X-GitHub-Event, X-Gitlab-Event, X-Event-Key and X-Gitea-Event headers is set")
	}
	if len(e.eventType) > maxHeaderValue || len(e.delivery) > maxHeaderValue {
		return e, fmt.Errorf("event type or delivery id longer than %d bytes", maxHeaderValue)
	}
	e.kind = kindOf(e.provider, e.eventType)
	return e, nil
}

// kindOf maps a provider's event type to what the Receiver does with it.
func kindOf(provider, eventType string) string {
	switch provider + "/" + eventType {
	case ProviderGitHub + "/push", ProviderGitea + "/push",
		ProviderGitLab + "/Push Hook", ProviderGitLab + "/Tag Push Hook",
		ProviderBitbucket + "/repo:push", ProviderBitbucket + "/repo:refs_changed":
		return kindPush
	case ProviderGitHub + "/ping", ProviderBitbucket + "/diagnostics:ping":
		return kindPing
	}
	return kindIgnore
}

// authentic reports whether a request of provider proves that its sender
// knows secret: the HMAC-SHA256 of the body in GitHub's
// X-Hub-Signature-256, Bitbucket's X-Hub-Signature or Gitea's
// X-Gitea-Signature, or GitLab's X-Gitlab-Token.
func authentic(provider string, h http.Header, body, secret []byte) bool {
	switch provider {
	case ProviderGitHub:
		return hooksig.HMACSHA256(h.Get("X-Hub-Signature-256"), "sha256=", body, secret)
	case ProviderBitbucket:
		return hooksig.HMACSHA256(h.Get("X-Hub-Signature"), "sha256=", body, secret)
	case ProviderGitea:
		return hooksig.HMACSHA256(h.Get("X-Gitea-Signature"), "", body, secret)
	case ProviderGitLab:
		return hooksig.TokenEqual(h.Get("X-Gitlab-Token"), secret)
	}
	return false
}

// githubPush is the part of a GitHub or Gitea push event the Receiver
// reads; the two share the shape.
type githubPush struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Repository struct {
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		SSHURL   string `json:"ssh_url"`
		GitURL   string `json:"git_url"`
	} `json:"repository"`
}

// gitlabPush is the part of a GitLab push or tag push event the Receiver
// reads.
type gitlabPush struct {
	Ref         string `json:"ref"`
	After       string `json:"after"`
	CheckoutSHA string `json:"checkout_sha"`
	Project     struct {
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
		WebURL     string `json:"web_url"`
	} `json:"project"`
	Repository struct {
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
		Homepage   string `json:"homepage"`
	} `json:"repository"`
}

// bitbucketLink is one of a Bitbucket repository's links.
type bitbucketLink struct {
	Href string `json:"href"`
	Name string `json:"name"`
}

// bitbucketPush is the part of a Bitbucket Cloud repo:push or Bitbucket
// Server (Data Center) repo:refs_changed event the Receiver reads.
type bitbucketPush struct {
	Repository struct {
		// FullName is Cloud's "workspace/slug".
		FullName string `json:"full_name"`
		// Links is an object of single links on Cloud ({"html": {...}})
		// and of lists on Server ({"clone": [...], "self": [...]}).
		Links map[string]json.RawMessage `json:"links"`
	} `json:"repository"`
	// Push is Cloud's.
	Push struct {
		Changes []struct {
			New *struct {
				Type   string `json:"type"`
				Name   string `json:"name"`
				Target struct {
					Hash string `json:"hash"`
				} `json:"target"`
			} `json:"new"`
		} `json:"changes"`
	} `json:"push"`
	// Changes are Server's.
	Changes []struct {
		Ref struct {
			ID string `json:"id"`
		} `json:"ref"`
		ToHash string `json:"toHash"`
	} `json:"changes"`
}

// parseBody completes e from a push event's body. It reads what any sender
// may claim; nothing of it is trusted before the signature is checked.
func parseBody(e *pushEvent, body []byte) error {
	switch e.provider {
	case ProviderGitHub, ProviderGitea:
		var p githubPush
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("parse %s %s event: %w", e.provider, e.eventType, err)
		}
		e.ref, e.sha = p.Ref, p.After
		e.urls = nonEmpty(p.Repository.CloneURL, p.Repository.HTMLURL, p.Repository.SSHURL, p.Repository.GitURL)
	case ProviderGitLab:
		var p gitlabPush
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("parse gitlab %s event: %w", e.eventType, err)
		}
		e.ref, e.sha = p.Ref, p.CheckoutSHA
		if e.sha == "" {
			e.sha = p.After
		}
		e.urls = nonEmpty(p.Project.GitHTTPURL, p.Project.GitSSHURL, p.Project.WebURL,
			p.Repository.GitHTTPURL, p.Repository.GitSSHURL, p.Repository.Homepage)
	case ProviderBitbucket:
		var p bitbucketPush
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("parse bitbucket %s event: %w", e.eventType, err)
		}
		e.urls = bitbucketURLs(p)
		for _, c := range p.Push.Changes {
			if c.New != nil {
				e.ref, e.sha = c.New.Name, c.New.Target.Hash
				if c.New.Type == "branch" {
					e.ref = "refs/heads/" + c.New.Name
				} else if c.New.Type == "tag" {
					e.ref = "refs/tags/" + c.New.Name
				}
				break
			}
		}
		if len(p.Changes) > 0 {
			e.ref, e.sha = p.Changes[0].Ref.ID, p.Changes[0].ToHash
		}
	}
	if len(e.urls) == 0 {
		return fmt.Errorf("%s %s event names no repository URL", e.provider, e.eventType)
	}
	return nil
}

// bitbucketURLs are the URLs a Bitbucket event gives its repository by.
// Cloud's event has no clone links, only the web page
// https://bitbucket.org/<workspace>/<slug>; the clone URLs are that with
// .git and git@bitbucket.org:<workspace>/<slug>.git, which repoKey
// reduces to the web URL and to ssh://bitbucket.org/<workspace>/<slug>.
// Server's lists its clone URLs (HTTP and SSH, which differ in path).
func bitbucketURLs(p bitbucketPush) []string {
	var urls []string
	for name, raw := range p.Repository.Links {
		var one bitbucketLink
		if json.Unmarshal(raw, &one) == nil {
			if name == "html" && one.Href != "" {
				urls = append(urls, one.Href)
				if u, err := url.Parse(one.Href); err == nil && p.Repository.FullName != "" {
					urls = append(urls, "ssh://"+u.Hostname()+"/"+p.Repository.FullName)
				}
			}
			continue
		}
		var many []bitbucketLink
		if name == "clone" && json.Unmarshal(raw, &many) == nil {
			for _, l := range many {
				urls = append(urls, l.Href)
			}
		}
	}
	return nonEmpty(urls...)
}

// nonEmpty returns the strings that are not empty, at most 16 of them:
// a forged body may not make the Receiver compare without end.
func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" && len(out) < 16 {
			out = append(out, s)
		}
	}
	return out
}
