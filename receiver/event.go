package receiver

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gyreops/gyre/internal/scmevent"
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
	if provider == ProviderBitbucket {
		provider = scmevent.BitbucketCloud // both flavours sign alike
	}
	return scmevent.Authentic(provider, h, body, secret)
}

// parseBody completes e from a push event's body. It reads what any sender
// may claim; nothing of it is trusted before the signature is checked.
func parseBody(e *pushEvent, body []byte) error {
	// The trigger webhook server reads these events too: one parser
	// serves both.
	provider := e.provider
	if provider == ProviderBitbucket {
		provider = scmevent.BitbucketFlavour(e.eventType)
	}
	p, err := scmevent.Parse(provider, e.eventType, body)
	if err != nil {
		return err
	}
	e.ref, e.sha, e.urls = p.Ref, p.SHA, p.URLs
	if len(e.urls) == 0 {
		return fmt.Errorf("%s %s event names no repository URL", e.provider, e.eventType)
	}
	return nil
}
