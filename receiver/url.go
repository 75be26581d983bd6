package receiver

import (
	"net"
	"net/url"
	"regexp"
	"strings"
)

// scpLike is Git's user@host:path form of an SSH URL.
var scpLike = regexp.MustCompile(`^(?:[^@/:]+@)?([^@/:]+):(.*)$`)

// repoKey returns what two URLs of the same repository have in common,
// so that a Repository's spec.url and the URLs of a push event can be
// compared: the transport (http for http and https, ssh for ssh:// and
// scp-like user@host:path), the host in lower case with its port unless
// it is the default, and the path without trailing slashes or ".git".
// The user is left out: "git@" and "https://token@" name no repository.
// It returns "" for what is not a repository URL.
func repoKey(raw string) string {
	raw = strings.TrimSpace(raw)
	var transport, host, port, path string
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			return ""
		}
		host, port, path = u.Hostname(), u.Port(), u.Path
		switch strings.ToLower(u.Scheme) {
		case "http":
			transport = "http"
			if port == "80" {
				port = ""
			}
		case "https":
			transport = "http"
			if port == "443" {
				port = ""
			}
		case "ssh", "git+ssh":
			transport = "ssh"
			if port == "22" {
				port = ""
			}
		default:
			return ""
		}
	} else if m := scpLike.FindStringSubmatch(raw); m != nil {
		transport, host, path = "ssh", m[1], m[2]
	} else {
		return ""
	}
	path = strings.TrimRight(path, "/")
	path = strings.TrimSuffix(path, ".git")
	path = strings.Trim(path, "/")
	if path == "" {
		return ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	}
	return transport + "://" + strings.ToLower(host) + "/" + path
}

// matchesAny reports whether the Repository URL spec names the same
// repository as one of urls.
func matchesAny(spec string, urls []string) bool {
	want := repoKey(spec)
	if want == "" {
		return false
	}
	for _, u := range urls {
		if repoKey(u) == want {
			return true
		}
	}
	return false
}
