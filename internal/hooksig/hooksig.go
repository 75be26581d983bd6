package hooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// SecretKey is the key of the webhook secret in the Secrets that
// WorkflowTriggers and Repositories name.
const SecretKey = "webhookSecret"

// HMACSHA256 reports whether sig, the hex HMAC-SHA256 of body under
// secret, after an optional prefix such as "sha256=", is right. GitHub
// sends "sha256=<hex>" in X-Hub-Signature-256, Bitbucket the same in
// X-Hub-Signature, Gitea bare hex in X-Gitea-Signature.
func HMACSHA256(sig, prefix string, body, secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	hexSig, ok := strings.CutPrefix(sig, prefix)
	if !ok || hexSig == "" {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// TokenEqual reports whether a token sent in a header, as GitLab's
// X-Gitlab-Token, is secret.
func TokenEqual(token string, secret []byte) bool {
	if token == "" || len(secret) == 0 {
		return false
	}
	// Comparing digests keeps the time independent of the token's length
	// too, which a direct comparison would reveal.
	got, want := sha256.Sum256([]byte(token)), sha256.Sum256(secret)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// ReadBody reads req's body up to limit bytes. A larger body gives
// http.StatusRequestEntityTooLarge, a failed read http.StatusBadRequest,
// with an error to answer with.
func ReadBody(w http.ResponseWriter, req *http.Request, limit int64) ([]byte, int, error) {
	tooLarge := fmt.Errorf("body larger than %d bytes", limit)
	if req.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, tooLarge
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	return body, 0, nil
}
