package receiver

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestRepoKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
		want string
	}{
		{"An HTTPS URL keeps its host and path without .git.", "https://github.com/gyreops/demo.git", "http://github.com/gyreops/demo"},
		{"Trailing slashes go, before and after .git.", "https://github.com/gyreops/demo.git/", "http://github.com/gyreops/demo"},
		{"The host's case does not count.", "https://GitHub.COM/gyreops/demo", "http://github.com/gyreops/demo"},
		{"The path's case counts: servers may tell repositories apart by it.", "https://github.com/GyreOps/Demo", "http://github.com/GyreOps/Demo"},
		{"http and https are one transport.", "http://git.example.com/demo.git", "http://git.example.com/demo"},
		{"A default port is dropped.", "https://git.example.com:443/demo.git", "http://git.example.com/demo"},
		{"Another port stays.", "http://127.0.0.1:8080/demo.git", "http://127.0.0.1:8080/demo"},
		{"The user of an HTTPS URL names no repository.", "https://token@github.com/gyreops/demo.git", "http://github.com/gyreops/demo"},
		{"An scp-like SSH URL is an SSH URL of the same path.", "git@github.com:gyreops/demo.git", "ssh://github.com/gyreops/demo"},
		{"An ssh:// URL is the same as the scp-like one.", "ssh://git@github.com/gyreops/demo", "ssh://github.com/gyreops/demo"},
		{"An ssh:// URL on port 22 is the same too.", "ssh://git@github.com:22/gyreops/demo.git", "ssh://github.com/gyreops/demo"},
		{"An SSH port of its own stays.", "ssh://git@bitbucket.example.com:7999/ops/demo.git", "ssh://bitbucket.example.com:7999/ops/demo"},
		{"A URL without a path names no repository.", "https://github.com/", ""},
		{"A file path names no repository a Git server can push.", "/srv/git/demo.git", ""},
		{"Another scheme names no repository.", "ftp://example.com/demo.git", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(repoKey(tc.url)).To(Equal(tc.want))
		})
	}
}
