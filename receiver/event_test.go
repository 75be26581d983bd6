package receiver

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestParseBody_readsEachProvidersPushPayload(t *testing.T) {
	for _, tc := range []struct {
		name      string
		header    http.Header
		file      string
		wantRef   string
		wantSHA   string
		wantMatch []string
	}{
		{"A GitHub push names its commit and every URL of its repository.",
			http.Header{"X-Github-Event": {"push"}}, "github-push.json",
			"refs/heads/main", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
			[]string{"https://github.com/gyreops/demo", "git@github.com:gyreops/demo.git", "ssh://git@github.com/gyreops/demo"}},
		{"A GitLab push names its checkout commit and the project's HTTP and SSH URLs.",
			http.Header{"X-Gitlab-Event": {"Push Hook"}}, "gitlab-push.json",
			"refs/heads/main", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
			[]string{"https://gitlab.example.com/gyreops/demo.git", "git@gitlab.example.com:gyreops/demo.git"}},
		{"A GitLab tag push is a push of the tag.",
			http.Header{"X-Gitlab-Event": {"Tag Push Hook"}}, "gitlab-tag-push.json",
			"refs/tags/v1.4.0", "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
			[]string{"https://gitlab.example.com/gyreops/demo"}},
		{"A Bitbucket Cloud push names the new branch head, and its web page stands for its HTTPS and SSH clone URLs.",
			http.Header{"X-Event-Key": {"repo:push"}}, "bitbucket-cloud-push.json",
			"refs/heads/main", "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
			[]string{"https://bitbucket.org/gyreops/demo.git", "git@bitbucket.org:gyreops/demo.git"}},
		{"A Bitbucket Server push names the new head and both clone URLs, whose paths differ.",
			http.Header{"X-Event-Key": {"repo:refs_changed"}}, "bitbucket-server-refs-changed.json",
			"refs/heads/main", "178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
			[]string{"https://bitbucket.example.com/scm/ops/demo.git", "ssh://git@bitbucket.example.com:7999/ops/demo.git"}},
		{"A Gitea push, sent with GitHub's headers too, is read as Gitea's.",
			http.Header{"X-Gitea-Event": {"push"}, "X-Github-Event": {"push"}}, "gitea-push.json",
			"refs/heads/main", "bffeb74224043ba2feb48d137756c8a9331c449a",
			[]string{"https://gitea.example.com/gyreops/demo.git", "git@gitea.example.com:gyreops/demo.git"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			g.Expect(err).NotTo(HaveOccurred())
			e, err := readHeaders(tc.header)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(e.kind).To(Equal(kindPush))
			g.Expect(parseBody(&e, body)).To(Succeed())
			g.Expect(e.ref).To(Equal(tc.wantRef))
			g.Expect(e.sha).To(Equal(tc.wantSHA))
			for _, u := range tc.wantMatch {
				g.Expect(matchesAny(u, e.urls)).To(BeTrue(), "%s is one of %v", u, e.urls)
			}
		})
	}
}

func TestReadHeaders_kindOfEachEventType(t *testing.T) {
	for _, tc := range []struct {
		name     string
		header   http.Header
		provider string
		kind     string
	}{
		{"GitHub's ping is answered.", http.Header{"X-Github-Event": {"ping"}}, ProviderGitHub, kindPing},
		{"Bitbucket Server's test connection is answered.", http.Header{"X-Event-Key": {"diagnostics:ping"}}, ProviderBitbucket, kindPing},
		{"A GitHub pull request asks for no fetch.", http.Header{"X-Github-Event": {"pull_request"}}, ProviderGitHub, kindIgnore},
		{"A GitLab merge request asks for no fetch.", http.Header{"X-Gitlab-Event": {"Merge Request Hook"}}, ProviderGitLab, kindIgnore},
		{"A Bitbucket pull request asks for no fetch.", http.Header{"X-Event-Key": {"pullrequest:created"}}, ProviderBitbucket, kindIgnore},
		{"Gitea's own header wins over the GitHub header it also sends.", http.Header{"X-Gitea-Event": {"push"}, "X-Github-Event": {"push"}}, ProviderGitea, kindPush},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e, err := readHeaders(tc.header)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(e.provider).To(Equal(tc.provider))
			g.Expect(e.kind).To(Equal(tc.kind))
		})
	}
}

func TestReadHeaders_refusesWhatNoGitServerSends(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"A request without an event header is refused.", http.Header{"Content-Type": {"application/json"}}},
		{"An event type longer than any Git server's is refused.", http.Header{"X-Github-Event": {string(make([]byte, 200))}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := readHeaders(tc.header)
			g.Expect(err).To(HaveOccurred())
		})
	}
}
