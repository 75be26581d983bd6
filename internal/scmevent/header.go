package scmevent

import (
	"net/http"
	"strings"

	"github.com/gyreops/gyre/internal/hooksig"
)

// Providers, as the trigger webhook server names them in run annotations.
const (
	GitHub          = "github"
	GitLab          = "gitlab"
	BitbucketCloud  = "bitbucket-cloud"
	BitbucketServer = "bitbucket-server"
	Gitea           = "gitea"
)

// Detect tells a request of Gitea, Bitbucket Cloud or Bitbucket Server
// by its headers and reads its event type and delivery id; ok is false
// for any other sender. Gitea also sends GitHub's and Gogs' headers, so
// callers ask Detect before they look for GitHub's.
func Detect(h http.Header) (provider, eventType, delivery string, ok bool) {
	if t := h.Get("X-Gitea-Event"); t != "" {
		return Gitea, t, h.Get("X-Gitea-Delivery"), true
	}
	if key := h.Get("X-Event-Key"); key != "" {
		if p := BitbucketFlavour(key); p == BitbucketServer {
			return p, key, h.Get("X-Request-Id"), true
		}
		return BitbucketCloud, key, h.Get("X-Request-UUID"), true
	}
	return "", "", "", false
}

// BitbucketFlavour says which Bitbucket sends events of key. Both send
// X-Event-Key, but their keys differ: Server's pull request events start
// with "pr:" and its push is "repo:refs_changed", Cloud's are
// "pullrequest:…" and "repo:push".
func BitbucketFlavour(key string) string {
	switch {
	case strings.HasPrefix(key, "pr:"), strings.HasPrefix(key, "diagnostics:"),
		strings.HasPrefix(key, "mirror:"), strings.HasPrefix(key, "repo:comment:"),
		key == "repo:refs_changed", key == "repo:modified", key == "repo:forked":
		return BitbucketServer
	}
	return BitbucketCloud
}

// Authentic reports whether a request of provider proves its sender knows
// secret: the HMAC-SHA256 of the body, "sha256=<hex>" in GitHub's
// X-Hub-Signature-256 and in X-Hub-Signature for both Bitbucket flavours,
// bare hex in X-Gitea-Signature; or the secret itself in GitLab's
// X-Gitlab-Token. All compare in constant time; an empty secret proves
// nothing.
func Authentic(provider string, h http.Header, body, secret []byte) bool {
	switch provider {
	case GitHub:
		return hooksig.HMACSHA256(h.Get("X-Hub-Signature-256"), "sha256=", body, secret)
	case GitLab:
		return hooksig.TokenEqual(h.Get("X-Gitlab-Token"), secret)
	case BitbucketCloud, BitbucketServer:
		return hooksig.HMACSHA256(h.Get("X-Hub-Signature"), "sha256=", body, secret)
	case Gitea:
		return hooksig.HMACSHA256(h.Get("X-Gitea-Signature"), "", body, secret)
	}
	return false
}
