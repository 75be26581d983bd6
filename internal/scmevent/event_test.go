package scmevent

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// fixture is a payload the trigger webhook server's tests send too.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "trigger", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name         string
		h            http.Header
		wantProvider string
		wantDelivery string
		wantOK       bool
	}{
		{"A Gitea event is Gitea's although it carries GitHub's headers too.",
			http.Header{"X-Gitea-Event": {"push"}, "X-Github-Event": {"push"}, "X-Gitea-Delivery": {"g-1"}}, Gitea, "g-1", true},
		{"A repo:push is Bitbucket Cloud's, delivered as X-Request-UUID.",
			http.Header{"X-Event-Key": {"repo:push"}, "X-Request-Uuid": {"c-1"}}, BitbucketCloud, "c-1", true},
		{"A repo:refs_changed is Bitbucket Server's, delivered as X-Request-Id.",
			http.Header{"X-Event-Key": {"repo:refs_changed"}, "X-Request-Id": {"s-1"}}, BitbucketServer, "s-1", true},
		{"A pr: event is Bitbucket Server's.",
			http.Header{"X-Event-Key": {"pr:comment:added"}, "X-Request-Id": {"s-2"}}, BitbucketServer, "s-2", true},
		{"A GitHub event is none of these.",
			http.Header{"X-Github-Event": {"push"}}, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p, _, d, ok := Detect(tc.h)
			g.Expect(ok).To(Equal(tc.wantOK))
			g.Expect(p).To(Equal(tc.wantProvider))
			g.Expect(d).To(Equal(tc.wantDelivery))
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, provider, eventType, file string
		want                            Event
	}{
		{"A Bitbucket Cloud push that made a tag and deleted a branch builds the tag.",
			BitbucketCloud, "repo:push", "bitbucket-cloud-push-tag.json",
			Event{Kind: KindTag, Repo: "gyreops/demo", Ref: "refs/tags/v1.4.0", SHA: "9c3b1f0e7a52d4be0f7d2cdd3b8a06f3e41c2b77"}},
		{"A Bitbucket Cloud push that only deleted main fires nothing and says so.",
			BitbucketCloud, "repo:push", "bitbucket-cloud-push-deleted.json",
			Event{Repo: "gyreops/demo", Ref: "refs/heads/main", Deleted: true}},
		{"A Bitbucket Server push names the repository by project key and slug.",
			BitbucketServer, "repo:refs_changed", "bitbucket-server-refs-changed.json",
			Event{Kind: KindPush, Repo: "OPS/demo", Ref: "refs/heads/main", Branch: "main", SHA: "178864a7d521b6f5e720b386b2c2b0ef8563e0dc"}},
		{"A Bitbucket Server branch deletion fires nothing and says so.",
			BitbucketServer, "repo:refs_changed", "bitbucket-server-refs-changed-deleted.json",
			Event{Repo: "OPS/demo", Ref: "refs/heads/main", Deleted: true}},
		{"A Bitbucket Server pull request comment names the target repository, branch and the source head.",
			BitbucketServer, "pr:comment:added", "bitbucket-server-pr-comment.json",
			Event{Kind: KindPullRequestComment, Repo: "OPS/demo", Ref: "refs/pull-requests/7/from", Branch: "main",
				SHA: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", Comment: "/test", CommentID: "62"}},
		{"A Gitea push whose after commit is all zeros is a deletion.",
			Gitea, "push", "gitea-push-deleted.json",
			Event{Repo: "gyreops/demo", Ref: "refs/heads/main", Deleted: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Parse(tc.provider, tc.eventType, fixture(t, tc.file))
			g.Expect(err).NotTo(HaveOccurred())
			got.URLs = nil
			tc.want.Provider, tc.want.EventType = tc.provider, tc.eventType
			g.Expect(got).To(Equal(tc.want))
		})
	}
}
