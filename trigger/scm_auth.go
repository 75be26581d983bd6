package trigger

import (
	"net/http"

	"github.com/gyreops/gyre/internal/hooksig"
	"github.com/gyreops/gyre/internal/scmevent"
)

// SecretKey is the key of the webhook secret in the Secret a trigger's
// spec.scm.secret names.
const SecretKey = hooksig.SecretKey

// authentic reports whether a request of provider carries proof that its
// sender knows secret: GitHub's HMAC-SHA256 of the body in
// X-Hub-Signature-256, GitLab's X-Gitlab-Token, the X-Subversion-Token
// a Subversion hook sends, or the HMAC-SHA256 Bitbucket (Cloud and Server)
// sends in X-Hub-Signature and Gitea in X-Gitea-Signature. All compare in
// constant time; an empty secret proves nothing.
func authentic(provider string, h http.Header, body, secret []byte) bool {
	if provider == providerSVN {
		// Subversion has no webhook signature of its own; a token sent as
		// GitLab sends it keeps the hook script a single curl command.
		return hooksig.TokenEqual(h.Get("X-Subversion-Token"), secret)
	}
	return scmevent.Authentic(provider, h, body, secret)
}
