package source

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Reason classifies a source failure. Its values are condition reasons.
type Reason string

// Reasons a source operation fails for.
const (
	// AuthenticationFailed: the server refused the credentials, or the
	// credentials in the Secret are unusable.
	AuthenticationFailed Reason = "AuthenticationFailed"
	// RefNotFound: no branch, tag or commit matches the ref, a semver range
	// matches no tag, or the repository has no commits.
	RefNotFound Reason = "RefNotFound"
	// FetchFailed: the remote could not be listed or fetched (host
	// unreachable, repository missing, protocol error).
	FetchFailed Reason = "FetchFailed"
	// InvalidURL: the URL cannot be parsed or has an unsupported scheme.
	InvalidURL Reason = "InvalidURL"
	// InvalidRef: the ref is malformed, such as a bad semver range or a
	// commit that is not a full SHA-1.
	InvalidRef Reason = "InvalidRef"
	// UnknownHostKey: the SSH server's host key is not in known_hosts.
	UnknownHostKey Reason = "UnknownHostKey"
	// SymlinkEscape: the tree holds a symlink that points outside the
	// checkout.
	SymlinkEscape Reason = "SymlinkEscape"
	// LimitExceeded: the repository went past one of its Limits (bytes
	// fetched, file count, checked-out size).
	LimitExceeded Reason = "LimitExceeded"
	// StorageFailed: the artifact could not be written to the cache.
	StorageFailed Reason = "StorageFailed"
)

// Error is a failed source operation. Use errors.As to read its Reason;
// the message is the subject (the redacted URL) and the cause.
// Its message never holds a credential: URLs are redacted and known secret
// values are masked.
type Error struct {
	// Reason classifies the failure.
	Reason Reason
	// URL is the remote, with any userinfo redacted.
	URL string
	// Err is the cause, already scrubbed of credentials.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.URL == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s: %v", e.URL, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Terminal reports whether retrying cannot help until the spec changes:
// the URL or ref is malformed, or the repository is past its limits.
func (e *Error) Terminal() bool {
	return e.Reason == InvalidURL || e.Reason == InvalidRef || e.Reason == LimitExceeded
}

// ReasonOf returns the Reason of the first *Error in err's chain, or
// FetchFailed when there is none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return FetchFailed
}

// RedactURL hides the userinfo of a URL: https://user:pw@host/x becomes
// https://***@host/x. Unparseable input that looks like it holds
// userinfo is redacted up to the last '@'.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.Scheme != "" && u.Host != "" {
		if u.User == nil {
			return raw
		}
		// url.URL would escape the asterisks; build the string by hand.
		return u.Scheme + "://***@" + u.Host + u.EscapedPath()
	}
	// scp-like user@host:path names only a user, never a password; keep
	// it, as ssh itself prints it.
	if i := strings.Index(raw, "://"); i >= 0 {
		if j := strings.LastIndex(raw, "@"); j > i {
			return raw[:i+3] + "***" + raw[j:]
		}
	}
	return raw
}

// newError builds an *Error whose cause is scrubbed of the given secrets
// and of the URL's userinfo.
func newError(reason Reason, rawURL string, err error, secrets ...string) *Error {
	return &Error{Reason: reason, URL: RedactURL(rawURL), Err: scrub(err, rawURL, secrets...)}
}

// scrubbed is an error whose message had credentials masked. It keeps the
// original chain for errors.Is, so transport sentinels still match.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// minSecretLen keeps masking from shredding messages when a secret is a
// single common character; such a secret cannot be told apart anyway.
const minSecretLen = 3

func scrub(err error, rawURL string, secrets ...string) error {
	if err == nil {
		return nil
	}
	// Servers end their messages with a newline; conditions should not.
	msg := strings.TrimSpace(err.Error())
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw, url.QueryEscape(pw))
		}
		secrets = append(secrets, u.User.String())
		msg = strings.ReplaceAll(msg, rawURL, RedactURL(rawURL))
	}
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}
