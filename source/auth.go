package source

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Secret data keys AuthFromSecret reads. They match Flux's GitRepository
// Secrets, so existing Secrets work unchanged.
const (
	SecretUsername    = "username"
	SecretPassword    = "password"
	SecretBearerToken = "bearerToken"
	SecretCAFile      = "caFile"
	SecretIdentity    = "identity"
	SecretKnownHosts  = "known_hosts"
)

func init() {
	// go-git looks every SSH host up in ~/.ssh/config and
	// /etc/ssh/ssh_config, where a Hostname or Port entry silently moves
	// the connection elsewhere. A Repository's URL alone must say where
	// gyre connects: the same spec has to reach the same host whichever
	// home directory or container image the controller runs with.
	// Set before any goroutine, as go-git reads it without a lock.
	gitssh.DefaultSSHConfig = nil
}

// Auth holds the credentials for one remote. The zero value, like a nil
// *Auth, means anonymous access over HTTP(S); SSH always needs Auth.
type Auth struct {
	// Username and Password are HTTP basic credentials.
	Username, Password string
	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken string
	// CAFile is a PEM bundle trusted for HTTPS on top of the system roots.
	CAFile []byte
	// Identity is a PEM private key for SSH; Password decrypts it when it
	// is encrypted.
	Identity []byte
	// KnownHosts is an OpenSSH known_hosts file; SSH servers must match it.
	KnownHosts []byte
}

// AuthFromSecret reads credentials for url from a Secret's data. For SSH
// URLs it needs identity and known_hosts; for HTTP(S) it accepts username
// and password, or bearerToken, and an optional caFile. It reports an
// error, never naming a value, when the data cannot serve the URL.
func AuthFromSecret(data map[string][]byte, url string) (*Auth, error) {
	a := &Auth{
		Username:    string(data[SecretUsername]),
		Password:    string(data[SecretPassword]),
		BearerToken: string(data[SecretBearerToken]),
		CAFile:      data[SecretCAFile],
		Identity:    data[SecretIdentity],
		KnownHosts:  data[SecretKnownHosts],
	}
	ep, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return newError(AuthenticationFailed, url, fmt.Errorf(format, args...))
	}
	switch ep.Protocol {
	case "ssh":
		if len(a.Identity) == 0 {
			return nil, bad("secret has no %q for an SSH URL", SecretIdentity)
		}
		if len(a.KnownHosts) == 0 {
			return nil, bad("secret has no %q for an SSH URL", SecretKnownHosts)
		}
		if _, err := a.sshAuth(ep); err != nil {
			return nil, err
		}
	default:
		if a.Username != "" && a.BearerToken != "" {
			return nil, bad("secret has both %q and %q; keep one", SecretUsername, SecretBearerToken)
		}
		if (a.Username == "") != (a.Password == "") {
			return nil, bad("secret needs both %q and %q for basic auth", SecretUsername, SecretPassword)
		}
	}
	return a, nil
}

// secrets lists the values that must never appear in a message.
func (a *Auth) secrets() []string {
	if a == nil {
		return nil
	}
	return []string{a.Password, a.BearerToken}
}

// method returns the go-git auth method for the endpoint.
func (a *Auth) method(ep *transport.Endpoint) (transport.AuthMethod, error) {
	if ep.Protocol == "ssh" {
		if a == nil || len(a.Identity) == 0 || len(a.KnownHosts) == 0 {
			return nil, newError(AuthenticationFailed, ep.String(),
				fmt.Errorf("SSH needs %q and %q", SecretIdentity, SecretKnownHosts))
		}
		return a.sshAuth(ep)
	}
	if a == nil {
		return nil, nil
	}
	switch {
	case a.BearerToken != "":
		return &githttp.TokenAuth{Token: a.BearerToken}, nil
	case a.Username != "":
		return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
	}
	return nil, nil
}

func (a *Auth) sshAuth(ep *transport.Endpoint) (*gitssh.PublicKeys, error) {
	user := ep.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, a.Identity, a.Password)
	if err != nil {
		// The parser's message names the key type at most, never key bytes.
		return nil, newError(AuthenticationFailed, ep.String(), fmt.Errorf("parse %q: %w", SecretIdentity, err), a.Password)
	}
	cb, algos, err := knownHostsCallback(a.KnownHosts, ep)
	if err != nil {
		return nil, newError(AuthenticationFailed, ep.String(), err)
	}
	keys.HostKeyCallback = cb
	keys.HostKeyAlgorithms = algos
	return keys, nil
}

// errUnknownHostKey marks a host key known_hosts does not list. The
// callback returns it so the failure is classified by type, not by the
// ssh package's message.
type errUnknownHostKey struct{ host string }

func (e *errUnknownHostKey) Error() string {
	return fmt.Sprintf("host key of %s is not in known_hosts", e.host)
}

// knownHostsCallback builds a strict host key check from known_hosts
// bytes. It also returns the key algorithms known_hosts lists for the
// host, so the server is asked for a key type that can match.
func knownHostsCallback(data []byte, ep *transport.Endpoint) (ssh.HostKeyCallback, []string, error) {
	// knownhosts reads files only; the data lives in a file for the
	// duration of the parse.
	f, err := os.CreateTemp("", "gyre-known-hosts-")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, nil, werr
	}
	check, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, nil, fmt.Errorf("parse %q: %w", SecretKnownHosts, err)
	}
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var kerr *knownhosts.KeyError
		if errors.As(err, &kerr) && len(kerr.Want) == 0 {
			return &errUnknownHostKey{host: hostname}
		}
		return err
	}
	return cb, hostKeyAlgorithms(data, ep), nil
}

// hostKeyAlgorithms lists the key types known_hosts holds for the
// endpoint's host, in file order.
func hostKeyAlgorithms(data []byte, ep *transport.Endpoint) []string {
	port := ep.Port
	if port == 0 {
		port = 22
	}
	addr := knownhosts.Normalize(net.JoinHostPort(ep.Host, fmt.Sprint(port)))
	var algos []string
	seen := map[string]bool{}
	rest := data
	for len(bytes.TrimSpace(rest)) > 0 {
		marker, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			break
		}
		rest = next
		if marker != "" {
			continue
		}
		for _, h := range hosts {
			if h == addr || matchHashed(h, addr) {
				for _, alg := range algorithmsFor(key.Type()) {
					if !seen[alg] {
						seen[alg] = true
						algos = append(algos, alg)
					}
				}
			}
		}
	}
	return algos
}

// matchHashed reports whether a hashed known_hosts entry (|1|salt|hash)
// names addr.
func matchHashed(entry, addr string) bool {
	parts := strings.Split(entry, "|")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "1" {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(addr))
	return hmac.Equal(mac.Sum(nil), want)
}

// algorithmsFor maps a key type to the host key algorithms that can
// present it: an RSA key is offered under the SHA-2 signature names.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}
