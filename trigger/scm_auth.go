package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// SecretKey is the key of the webhook secret in the Secret a trigger's
// spec.scm.secret names.
const SecretKey = "webhookSecret"

// authentic reports whether a request of provider carries proof that its
// sender knows secret: GitHub's HMAC-SHA256 of the body in
// X-Hub-Signature-256, GitLab's X-Gitlab-Token, or the X-Subversion-Token
// a Subversion hook sends. All compare in constant time; an empty secret
// proves nothing.
func authentic(provider string, h http.Header, body, secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	switch provider {
	case providerGitHub:
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if !ok {
			return false
		}
		got, err := hex.DecodeString(sig)
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	case providerGitLab:
		return tokenEqual(h.Get("X-Gitlab-Token"), secret)
	case providerSVN:
		// Subversion has no webhook signature of its own; a token sent as
		// GitLab sends it keeps the hook script a single curl command.
		return tokenEqual(h.Get("X-Subversion-Token"), secret)
	}
	return false
}

// tokenEqual reports whether a token sent in a header is secret.
func tokenEqual(token string, secret []byte) bool {
	if token == "" {
		return false
	}
	// Comparing digests keeps the time independent of the token's length
	// too, which a direct comparison would reveal.
	got, want := sha256.Sum256([]byte(token)), sha256.Sum256(secret)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
