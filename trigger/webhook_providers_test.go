package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/gyreops/gyre/internal/convention"
)

// serveOnLoopback serves srv on a loopback port until the test ends and
// returns its base URL.
func serveOnLoopback(t *testing.T, srv *WebhookServer) string {
	t.Helper()
	g := NewWithT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// postOverTheWire sends d to the server at base as the SCM would.
func postOverTheWire(g Gomega, base, ns string, d delivery) (int, webhookResponse) {
	req := d.request(ns)
	wire, err := http.NewRequest(http.MethodPost, base+req.URL.Path, bytes.NewReader(d.body))
	g.Expect(err).NotTo(HaveOccurred())
	wire.Header = req.Header
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(wire)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	var r webhookResponse
	g.Expect(json.Unmarshal(body, &r)).To(Succeed(), string(body))
	return resp.StatusCode, r
}

func TestWebhookServer_bitbucketAndGitea(t *testing.T) {
	const id = "b6f1e0d2-5a4c-4e3b-9f8a-7c6d5e4f3a2b"
	tests := []deliveryCase{
		{
			name: "A signed Bitbucket Cloud push to main starts a run of the new head",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "repo:push", id, readPayload(t, "bitbucket-cloud-push.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPush, wantRef: "refs/heads/main", wantRevision: "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
		},
		{
			name: "A Bitbucket Cloud push signed with the other trigger's secret starts only that trigger's run",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "repo:push", id, readPayload(t, "bitbucket-cloud-push.json"), "good", mirrorSecret}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"mirror"},
			wantEvent: eventPush, wantRef: "refs/heads/main", wantRevision: "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
		},
		{
			name: "A signed Bitbucket Cloud tag push starts a tag run",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "repo:push", id, readPayload(t, "bitbucket-cloud-push-tag.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventTag, wantRef: "refs/tags/v1.4.0", wantRevision: "9c3b1f0e7a52d4be0f7d2cdd3b8a06f3e41c2b77",
		},
		{
			name: "A signed Bitbucket Cloud push that deleted main starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "repo:push", id, readPayload(t, "bitbucket-cloud-push-deleted.json"), "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A signed Bitbucket Cloud pull request to main starts a run of its source commit",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "pullrequest:created", id, readPayload(t, "bitbucket-cloud-pull-request.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequest, wantRef: "refs/heads/feature/go-cache", wantRevision: "e1f2a3b4c5d6",
		},
		{
			name: "A signed Bitbucket Cloud \"/test\" comment on an open pull request starts a run of its source commit",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "pullrequest:comment_created", id, readPayload(t, "bitbucket-cloud-pull-request-comment.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequestComment, wantRef: "refs/heads/feature/go-cache", wantRevision: "e1f2a3b4c5d6",
		},
		{
			name: "A Bitbucket Cloud push with a wrong signature is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "repo:push", id, readPayload(t, "bitbucket-cloud-push.json"), "bad", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "An unsigned Bitbucket Cloud push is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketCloud, "repo:push", id, readPayload(t, "bitbucket-cloud-push.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "A signed Bitbucket Server push to main starts a run of the trigger that names the repository by project key and slug",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "repo:refs_changed", id, readPayload(t, "bitbucket-server-refs-changed.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"bbs"},
			wantEvent: eventPush, wantRef: "refs/heads/main", wantRevision: "178864a7d521b6f5e720b386b2c2b0ef8563e0dc", wantRepo: "OPS/demo",
		},
		{
			name: "A signed Bitbucket Server tag push starts a tag run",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "repo:refs_changed", id, readPayload(t, "bitbucket-server-refs-changed-tag.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"bbs"},
			wantEvent: eventTag, wantRef: "refs/tags/v1.4.0", wantRevision: "5d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0", wantRepo: "OPS/demo",
		},
		{
			name: "A signed Bitbucket Server push that deleted main starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "repo:refs_changed", id, readPayload(t, "bitbucket-server-refs-changed-deleted.json"), "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A signed Bitbucket Server pull request to main starts a run of its source branch's head",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "pr:opened", id, readPayload(t, "bitbucket-server-pr-opened.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"bbs"},
			wantEvent: eventPullRequest, wantRef: "refs/pull-requests/7/from", wantRevision: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", wantRepo: "OPS/demo",
		},
		{
			name: "A signed Bitbucket Server \"/test\" comment on an open pull request starts a run of its source branch's head",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "pr:comment:added", id, readPayload(t, "bitbucket-server-pr-comment.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"bbs"},
			wantEvent: eventPullRequestComment, wantRef: "refs/pull-requests/7/from", wantRevision: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", wantRepo: "OPS/demo",
		},
		{
			name: "A signed Bitbucket Server pull request whose title changed starts nothing",
			d: func(t *testing.T) delivery {
				body := editPayload(t, "bitbucket-server-pr-opened.json", `"eventKey": "pr:opened"`, `"eventKey": "pr:modified"`)
				return delivery{providerBitbucketServer, "pr:modified", id, body, "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A Bitbucket Server push with a wrong signature is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "repo:refs_changed", id, readPayload(t, "bitbucket-server-refs-changed.json"), "bad", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "An unsigned Bitbucket Server push is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "repo:refs_changed", id, readPayload(t, "bitbucket-server-refs-changed.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "Bitbucket Server's test connection is answered and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "diagnostics:ping", id, []byte(`{"test": true}`), "", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A Bitbucket Server push without its X-Request-Id is refused",
			d: func(t *testing.T) delivery {
				return delivery{providerBitbucketServer, "repo:refs_changed", "", readPayload(t, "bitbucket-server-refs-changed.json"), "good", ""}
			},
			wantCode: http.StatusBadRequest,
		},
		{
			name: "A signed Gitea push to main, sent with GitHub's headers too, starts one run",
			d: func(t *testing.T) delivery {
				return delivery{providerGitea, "push", id, readPayload(t, "gitea-push.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPush, wantRef: "refs/heads/main", wantRevision: "bffeb74224043ba2feb48d137756c8a9331c449a",
		},
		{
			name: "A signed Gitea tag push starts a tag run",
			d: func(t *testing.T) delivery {
				return delivery{providerGitea, "push", id, readPayload(t, "gitea-push-tag.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventTag, wantRef: "refs/tags/v1.4.0", wantRevision: "3f8a2c1d0e9b7a6f5e4d3c2b1a0f9e8d7c6b5a49",
		},
		{
			name: "A signed Gitea push whose after commit is all zeros deleted main and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitea, "push", id, readPayload(t, "gitea-push-deleted.json"), "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A signed Gitea push marked deleted starts nothing",
			d: func(t *testing.T) delivery {
				body := editPayload(t, "gitea-push.json", `"ref": "refs/heads/main",`, `"ref": "refs/heads/main", "deleted": true,`)
				return delivery{providerGitea, "push", id, body, "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A signed Gitea pull request to main starts a run of its head commit",
			d: func(t *testing.T) delivery {
				return delivery{providerGitea, "pull_request", id, readPayload(t, "gitea-pull-request.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequest, wantRef: "refs/pull/12/head", wantRevision: "4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f",
		},
		{
			name: "A signed Gitea pull request that gained commits starts a run of its new head",
			d: func(t *testing.T) delivery {
				body := editPayload(t, "gitea-pull-request.json", `"action": "opened"`, `"action": "synchronized"`)
				return delivery{providerGitea, "pull_request", id, body, "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequest, wantRef: "refs/pull/12/head", wantRevision: "4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f",
		},
		{
			name: "A signed Gitea \"/test\" comment on an open pull request starts a run of the pull request's head ref",
			d: func(t *testing.T) delivery {
				return delivery{providerGitea, "issue_comment", id, readPayload(t, "gitea-pull-request-comment.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequestComment, wantRef: "refs/pull/12/head", wantRevision: "refs/pull/12/head",
		},
		{
			name: "A Gitea push with a wrong signature is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitea, "push", id, readPayload(t, "gitea-push.json"), "bad", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "An unsigned Gitea push is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitea, "push", id, readPayload(t, "gitea-push.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns, srv := newWebhookTest(t)
			base := serveOnLoopback(t, srv)
			code, resp := postOverTheWire(g, base, ns, tt.d(t))
			g.Expect(code).To(Equal(tt.wantCode), resp.Message)

			runs := tt.expectRuns(g, ns)
			for _, name := range tt.wantTriggers {
				g.Expect(runs[name][0].Annotations).To(HaveKeyWithValue(convention.AnnotationSCMDelivery, tt.d(t).provider+"/"+id))
			}
			g.Expect(resp.Message).NotTo(ContainSubstring(demoSecret))
		})
	}
}
