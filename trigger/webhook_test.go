package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/testcluster"
)

const (
	demoSecret   = "s3cr3t-demo"
	mirrorSecret = "s3cr3t-mirror"
)

// newWebhookTest makes a namespace with SCM triggers for gyreops/demo and
// gyreops/other and a server for them.
//
//   - build: push to main, pull requests to main, tags, "/test" comments on
//     pull requests; Secret scm-demo.
//   - mirror: pushes to any branch; Secret scm-mirror, another secret.
//   - other: gyreops/other; Secret scm-demo.
//   - paused: like build but disabled.
//   - open: like build but names no Secret, so nothing can fire it.
//   - svn: the Subversion repository svnUUID, commits under trunk/app;
//     Secret scm-demo.
//   - bbs: like build, for the Bitbucket Server repository demo of project
//     OPS, named as Cyclone names it, "ops/demo"; Secret scm-demo.
func newWebhookTest(t *testing.T) (string, *WebhookServer) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	for name, value := range map[string]string{"scm-demo": demoSecret, "scm-mirror": mirrorSecret} {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Data:       map[string][]byte{SecretKey: []byte(value)},
		}
		g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	}
	on := cyclonev1alpha1.SCMTriggerBasic{Enabled: true}
	buildPolicy := cyclonev1alpha1.SCMTriggerPolicy{
		Push:        cyclonev1alpha1.SCMTriggerPush{SCMTriggerBasic: on, Branches: []string{"main"}},
		PullRequest: cyclonev1alpha1.SCMTriggerPullRequest{SCMTriggerBasic: on, Branches: []string{"main"}},
		TagRelease:  cyclonev1alpha1.SCMTriggerTagRelease{SCMTriggerBasic: on},
		PullRequestComment: cyclonev1alpha1.SCMTriggerPullRequestComment{
			SCMTriggerBasic: on, Comments: []string{"/test"},
		},
	}
	pushAll := cyclonev1alpha1.SCMTriggerPolicy{Push: cyclonev1alpha1.SCMTriggerPush{SCMTriggerBasic: on}}
	svnApp := cyclonev1alpha1.SCMTriggerPolicy{PostCommit: cyclonev1alpha1.SCMTriggerPostCommit{
		SCMTriggerBasic: on,
		RootURL:         "https://svn.example.com/repos/demo",
		WorkflowURL:     "https://svn.example.com/repos/demo/trunk/app",
	}}
	for _, tc := range []struct {
		name, repo, secret string
		policy             cyclonev1alpha1.SCMTriggerPolicy
		disabled           bool
	}{
		{"build", "gyreops/demo", "scm-demo", buildPolicy, false},
		{"mirror", "https://github.com/gyreops/demo.git", "scm-mirror", pushAll, false},
		{"other", "gyreops/other", "scm-demo", pushAll, false},
		{"paused", "gyreops/demo", "scm-demo", buildPolicy, true},
		{"open", "gyreops/demo", "", buildPolicy, false},
		{"svn", svnUUID, "scm-demo", svnApp, false},
		{"bbs", "ops/demo", "scm-demo", buildPolicy, false},
	} {
		trig := &cyclonev1alpha1.WorkflowTrigger{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns, Labels: map[string]string{"project.cyclone.dev/name": "demo"}},
			Spec: cyclonev1alpha1.WorkflowTriggerSpec{
				Type:     cyclonev1alpha1.TriggerTypeSCM,
				SCM:      cyclonev1alpha1.SCMTrigger{Secret: tc.secret, Repo: tc.repo, SCMTriggerPolicy: tc.policy},
				Disabled: tc.disabled,
				WorkflowRunSpec: cyclonev1alpha1.WorkflowRunSpec{
					WorkflowRef:    &corev1.ObjectReference{Name: "build"},
					ResourceParams: []cyclonev1alpha1.ParameterConfig{{Name: "demo-git"}},
				},
			},
		}
		g.Expect(k8sClient.Create(ctx, trig)).To(Succeed())
	}
	srv := NewWebhookServer(k8sClient, WebhookOptions{
		Recorder: events.NewFakeRecorder(100),
		Clock:    clocktesting.NewFakeClock(time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)),
	})
	return ns, srv
}

// delivery is one webhook request.
type delivery struct {
	provider string // github, gitlab, svn, bitbucket-cloud, bitbucket-server or gitea
	event    string
	id       string // not sent for svn, whose id comes from the body
	body     []byte
	// sign is "good", "bad" (another secret) or "" (unsigned).
	sign   string
	secret string // the good secret; demoSecret when empty
}

func (d delivery) request(ns string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, WebhookPath+ns, bytes.NewReader(d.body))
	req.Header.Set("Content-Type", "application/json")
	secret := d.secret
	if secret == "" {
		secret = demoSecret
	}
	if d.sign == "bad" {
		secret = "not-the-secret"
	}
	switch d.provider {
	case providerGitHub:
		req.Header.Set("X-GitHub-Event", d.event)
		if d.id != "" {
			req.Header.Set("X-GitHub-Delivery", d.id)
		}
		if d.sign != "" {
			req.Header.Set("X-Hub-Signature-256", githubSignature(secret, d.body))
		}
	case providerGitLab:
		req.Header.Set("X-Gitlab-Event", d.event)
		if d.id != "" {
			req.Header.Set("X-Gitlab-Event-UUID", d.id)
		}
		if d.sign != "" {
			req.Header.Set("X-Gitlab-Token", secret)
		}
	case providerSVN:
		req.Header.Set("X-Subversion-Event", d.event)
		if d.sign != "" {
			req.Header.Set("X-Subversion-Token", secret)
		}
	case providerBitbucketCloud, providerBitbucketServer:
		req.Header.Set("X-Event-Key", d.event)
		req.Header.Set("User-Agent", "Bitbucket-Webhooks/2.0")
		if d.id != "" && d.provider == providerBitbucketCloud {
			req.Header.Set("X-Request-UUID", d.id)
			req.Header.Set("X-Hook-UUID", "{6c1c3b0e-0f4e-4b43-9d1d-2f3a4b5c6d7e}")
		} else if d.id != "" {
			req.Header.Set("X-Request-Id", d.id)
		}
		if d.sign != "" {
			req.Header.Set("X-Hub-Signature", githubSignature(secret, d.body))
		}
	case providerGitea:
		// Gitea sends GitHub's and Gogs' headers beside its own.
		req.Header.Set("X-Gitea-Event", d.event)
		req.Header.Set("X-Gitea-Event-Type", d.event)
		req.Header.Set("X-GitHub-Event", d.event)
		req.Header.Set("X-Gogs-Event", d.event)
		if d.id != "" {
			req.Header.Set("X-Gitea-Delivery", d.id)
			req.Header.Set("X-GitHub-Delivery", d.id)
		}
		if d.sign != "" {
			sig := strings.TrimPrefix(githubSignature(secret, d.body), "sha256=")
			req.Header.Set("X-Gitea-Signature", sig)
			req.Header.Set("X-Gogs-Signature", sig)
		}
	}
	return req
}

// runsByTrigger maps trigger names to the runs in ns they started.
func runsByTrigger(g Gomega, ns string) map[string][]cyclonev1alpha1.WorkflowRun {
	out := map[string][]cyclonev1alpha1.WorkflowRun{}
	for _, r := range listRuns(g, ns) {
		out[r.Annotations[convention.AnnotationTrigger]] = append(out[r.Annotations[convention.AnnotationTrigger]], r)
	}
	return out
}

func triggerNames(m map[string][]cyclonev1alpha1.WorkflowRun) []string {
	names := []string{}
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// deliveryCase is one webhook delivery and the runs it must start.
type deliveryCase struct {
	name         string
	d            func(t *testing.T) delivery
	wantCode     int
	wantTriggers []string
	wantEvent    string
	wantRef      string
	wantRevision string
	wantRepo     string // gyreops/demo when empty
}

// expectRuns asserts that the delivery started one run of each wanted
// trigger and no other, each carrying the event's labels, annotations,
// variables and revision, and returns the runs by trigger.
func (c deliveryCase) expectRuns(g Gomega, ns string) map[string][]cyclonev1alpha1.WorkflowRun {
	runs := runsByTrigger(g, ns)
	g.Expect(triggerNames(runs)).To(ConsistOf(c.wantTriggers))
	wantRepo := c.wantRepo
	if wantRepo == "" {
		wantRepo = "gyreops/demo"
	}
	for _, name := range c.wantTriggers {
		g.Expect(runs[name]).To(HaveLen(1))
		run := runs[name][0]
		g.Expect(run.Labels).To(HaveKeyWithValue(convention.LabelTriggerType, "SCM"))
		g.Expect(run.Labels).To(HaveKeyWithValue("project.cyclone.dev/name", "demo"))
		g.Expect(run.Labels).To(HaveKeyWithValue("workflow.cyclone.dev/name", "build"))
		g.Expect(run.Annotations).To(HaveKeyWithValue(convention.AnnotationSCMEvent, c.wantEvent))
		g.Expect(run.Spec.GlobalVariables).To(ConsistOf(
			cyclonev1alpha1.GlobalVariable{Name: VarSCMEvent, Value: c.wantEvent},
			cyclonev1alpha1.GlobalVariable{Name: VarSCMRef, Value: c.wantRef},
			cyclonev1alpha1.GlobalVariable{Name: VarSCMRevision, Value: c.wantRevision},
			cyclonev1alpha1.GlobalVariable{Name: VarSCMRepo, Value: wantRepo},
		))
		g.Expect(run.Spec.ResourceParams).To(HaveLen(1))
		g.Expect(run.Spec.ResourceParams[0].Parameters).To(HaveLen(1))
		g.Expect(*run.Spec.ResourceParams[0].Parameters[0].Value).To(Equal(c.wantRevision))
	}
	return runs
}

func TestWebhookServer_deliveries(t *testing.T) {
	testcluster.Require(t)
	const uuid = "8f1c6a2e-3b4d-11ef-9a7e-0242ac120002"
	tests := []deliveryCase{
		{
			name: "A signed GitHub push to main starts one run of the trigger whose secret signed it",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPush, wantRef: "refs/heads/main", wantRevision: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
		},
		{
			name: "A GitHub push signed with the other trigger's secret starts only that trigger's run",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push-feature.json"), "good", mirrorSecret}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"mirror"},
			wantEvent: eventPush, wantRef: "refs/heads/feature/faster-builds", wantRevision: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
		},
		{
			name: "A GitHub push with a wrong signature is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push.json"), "bad", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "An unsigned GitHub push is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "A signed GitHub push to a branch the trigger does not watch starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push-feature.json"), "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A signed GitHub push for a repository no trigger watches is refused",
			d: func(t *testing.T) delivery {
				body := bytes.ReplaceAll(readPayload(t, "github-push.json"), []byte("gyreops/demo"), []byte("gyreops/unknown"))
				return delivery{providerGitHub, "push", uuid, body, "good", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "A signed GitHub tag push starts a tag run",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "push", uuid, readPayload(t, "github-push-tag.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventTag, wantRef: "refs/tags/v1.4.0", wantRevision: "9c3b1f0e7a52d4be0f7d2cdd3b8a06f3e41c2b77",
		},
		{
			name: "A signed GitHub pull request to main starts a run of its head commit",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "pull_request", uuid, readPayload(t, "github-pull-request.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequest, wantRef: "refs/pull/42/head", wantRevision: "e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0",
		},
		{
			name: "A signed GitHub \"/test\" comment on an open pull request starts a run of the pull request's head ref",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "issue_comment", uuid, readPayload(t, "github-pull-request-comment.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequestComment, wantRef: "refs/pull/42/head", wantRevision: "refs/pull/42/head",
		},
		{
			name: "A signed GitHub comment that no trigger lists starts nothing",
			d: func(t *testing.T) delivery {
				body := editPayload(t, "github-pull-request-comment.json", `"body": "/test\r\n"`, `"body": "/test please"`)
				return delivery{providerGitHub, "issue_comment", uuid, body, "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "A signed GitHub ping is answered and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "ping", uuid, readPayload(t, "github-ping.json"), "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "An unsigned GitHub ping is refused",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "ping", uuid, readPayload(t, "github-ping.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "A GitHub push without a delivery id is refused",
			d: func(t *testing.T) delivery {
				return delivery{providerGitHub, "push", "", readPayload(t, "github-push.json"), "good", ""}
			},
			wantCode: http.StatusBadRequest,
		},
		{
			name: "A GitLab push with the right token starts one run",
			d: func(t *testing.T) delivery {
				return delivery{providerGitLab, "Push Hook", uuid, readPayload(t, "gitlab-push.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPush, wantRef: "refs/heads/main", wantRevision: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
		},
		{
			name: "A GitLab push with a wrong token is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitLab, "Push Hook", uuid, readPayload(t, "gitlab-push.json"), "bad", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "A GitLab push without a token is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerGitLab, "Push Hook", uuid, readPayload(t, "gitlab-push.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "A GitLab tag push with the right token starts a tag run",
			d: func(t *testing.T) delivery {
				return delivery{providerGitLab, "Tag Push Hook", uuid, readPayload(t, "gitlab-tag-push.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventTag, wantRef: "refs/tags/v1.4.0", wantRevision: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
		},
		{
			name: "A GitLab merge request to main starts a run of its last commit",
			d: func(t *testing.T) delivery {
				return delivery{providerGitLab, "Merge Request Hook", uuid, readPayload(t, "gitlab-merge-request.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequest, wantRef: "refs/merge-requests/17/head", wantRevision: "b83d6e391c22777fca1ed3012fce84f633d7fed0",
		},
		{
			name: "A GitLab \"/test\" note on an open merge request starts a run of its last commit",
			d: func(t *testing.T) delivery {
				return delivery{providerGitLab, "Note Hook", uuid, readPayload(t, "gitlab-merge-request-note.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"build"},
			wantEvent: eventPullRequestComment, wantRef: "refs/merge-requests/17/head", wantRevision: "b83d6e391c22777fca1ed3012fce84f633d7fed0",
		},
		{
			name: "An SVN post-commit with the right token under the workflow URL starts a run of its revision",
			d: func(t *testing.T) delivery {
				return delivery{providerSVN, "Post-Commit", "", readPayload(t, "svn-post-commit.json"), "good", ""}
			},
			wantCode: http.StatusAccepted, wantTriggers: []string{"svn"},
			wantEvent: eventPostCommit, wantRef: "12", wantRevision: "12", wantRepo: svnUUID,
		},
		{
			name: "An SVN post-commit with a wrong token is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerSVN, "Post-Commit", "", readPayload(t, "svn-post-commit.json"), "bad", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "An SVN post-commit without a token is refused and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerSVN, "Post-Commit", "", readPayload(t, "svn-post-commit.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "An SVN post-commit that changed nothing under the workflow URL starts nothing",
			d: func(t *testing.T) delivery {
				body := editPayload(t, "svn-post-commit.json", "trunk/", "branches/v1/")
				return delivery{providerSVN, "Post-Commit", "", body, "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "An SVN post-commit without a revision is refused",
			d: func(t *testing.T) delivery {
				body := editPayload(t, "svn-post-commit.json", `"revision":"12", `, ``)
				return delivery{providerSVN, "Post-Commit", "", body, "good", ""}
			},
			wantCode: http.StatusBadRequest,
		},
		{
			name: "An SVN event other than a post-commit is answered and starts nothing",
			d: func(t *testing.T) delivery {
				return delivery{providerSVN, "Post-Lock", "", readPayload(t, "svn-post-commit.json"), "good", ""}
			},
			wantCode: http.StatusOK,
		},
		{
			name: "An SVN event other than a post-commit without a token is refused",
			d: func(t *testing.T) delivery {
				return delivery{providerSVN, "Post-Lock", "", readPayload(t, "svn-post-commit.json"), "", ""}
			},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "A signed body over one MiB is refused with 413 and starts nothing",
			d: func(t *testing.T) delivery {
				body := readPayload(t, "github-push.json")
				body = append(body[:len(body)-2], []byte(`,"padding":"`+strings.Repeat("x", DefaultMaxBodyBytes)+`"}`)...)
				return delivery{providerGitHub, "push", uuid, body, "good", ""}
			},
			wantCode: http.StatusRequestEntityTooLarge,
		},
		{
			name: "A request that no SCM gyre knows sent is refused",
			d: func(t *testing.T) delivery {
				return delivery{"gogs", "push", uuid, readPayload(t, "github-push.json"), "", ""}
			},
			wantCode: http.StatusBadRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns, srv := newWebhookTest(t)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, tt.d(t).request(ns))
			g.Expect(rec.Code).To(Equal(tt.wantCode), rec.Body.String())
			g.Expect(rec.Header().Get("Content-Type")).To(Equal("application/json"))

			runs := tt.expectRuns(g, ns)
			for _, name := range tt.wantTriggers {
				run := runs[name][0]
				st := getTrigger(g, ns, name).Status
				g.Expect(st.Count).To(Equal(1))
				g.Expect(st.LastFired.Name).To(Equal(run.Name))
				g.Expect(st.LastFired.Event).To(Equal(tt.wantEvent))
			}
			g.Expect(rec.Body.String()).NotTo(ContainSubstring(demoSecret))
		})
	}
}

func TestWebhookServer_replayedDeliveryStartsNoSecondRun(t *testing.T) {
	testcluster.Require(t)
	tests := []struct {
		name string
		d    func(t *testing.T, id string) delivery
	}{
		{"A replayed GitHub delivery finds the run of the first", func(t *testing.T, id string) delivery {
			return delivery{providerGitHub, "push", id, readPayload(t, "github-push.json"), "good", ""}
		}},
		{"A replayed GitLab delivery finds the run of the first", func(t *testing.T, id string) delivery {
			return delivery{providerGitLab, "Push Hook", id, readPayload(t, "gitlab-push.json"), "good", ""}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns, srv := newWebhookTest(t)
			post := func(id string) webhookResponse {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, tt.d(t, id).request(ns))
				g.Expect(rec.Code).To(Equal(http.StatusAccepted), rec.Body.String())
				var resp webhookResponse
				g.Expect(json.Unmarshal(rec.Body.Bytes(), &resp)).To(Succeed())
				g.Expect(resp.Runs).To(HaveLen(1))
				return resp
			}
			first := post("delivery-1")
			g.Expect(first.Runs[0].Created).To(BeTrue())
			replay := post("delivery-1")
			g.Expect(replay.Runs[0].Created).To(BeFalse())
			g.Expect(replay.Runs[0].Run).To(Equal(first.Runs[0].Run))
			runs := listRuns(g, ns)
			g.Expect(runs).To(HaveLen(1))
			g.Expect(runs[first.Runs[0].Run].Finalizers).To(ConsistOf(convention.RunFinalizer), "created with the engine's finalizer, which the engine then need not write")
			g.Expect(getTrigger(g, ns, "build").Status.Count).To(Equal(1))
		})
	}
}

// TestWebhookServer_replayedEventStartsNoSecondRun: an attacker who saw
// one signed body posts it again under a new delivery id. It is the same
// event, and finds the run of the first within the replay window; another
// commit or another comment is a new event.
func TestWebhookServer_replayedEventStartsNoSecondRun(t *testing.T) {
	testcluster.Require(t)
	githubSHA, gitlabSHA := "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
	otherSHA := "1111111111111111111111111111111111111111"
	tests := []struct {
		name, provider, event string
		// payload is the first delivery's body; replacing old by new in
		// it makes another commit or comment.
		payload, old, new string
	}{
		{name: "A GitHub push replayed under a new delivery id starts no second run; another commit does.",
			provider: providerGitHub, event: "push", payload: "github-push.json", old: githubSHA, new: otherSHA},
		{name: "A GitLab push replayed under a new delivery id starts no second run; another commit does.",
			provider: providerGitLab, event: "Push Hook", payload: "gitlab-push.json", old: gitlabSHA, new: otherSHA},
		{name: "A GitHub pull request comment replayed under a new delivery id starts no second run; another comment does.",
			provider: providerGitHub, event: "issue_comment", payload: "github-pull-request-comment.json", old: `"id": 3344556677`, new: `"id": 3344556678`},
		{name: "A GitLab merge request note replayed under a new delivery id starts no second run; another note does.",
			provider: providerGitLab, event: "Note Hook", payload: "gitlab-merge-request-note.json", old: `"note": "/test"`, new: `"note": "/test "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns, srv := newWebhookTest(t)
			post := func(d delivery) webhookResponse {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, d.request(ns))
				g.Expect(rec.Code).To(Equal(http.StatusAccepted), rec.Body.String())
				var resp webhookResponse
				g.Expect(json.Unmarshal(rec.Body.Bytes(), &resp)).To(Succeed())
				return resp
			}
			runsOf := func(resp webhookResponse, created bool) map[string]string {
				out := map[string]string{}
				for _, r := range resp.Runs {
					g.Expect(r.Created).To(Equal(created), "run %s of trigger %s", r.Run, r.Trigger)
					out[r.Trigger] = r.Run
				}
				return out
			}
			body := readPayload(t, tt.payload)
			deliver := func(id string, body []byte) delivery {
				return delivery{tt.provider, tt.event, id, body, "good", ""}
			}
			first := runsOf(post(deliver("first", body)), true)
			g.Expect(first).NotTo(BeEmpty())
			before := len(listRuns(g, ns))

			g.Expect(runsOf(post(deliver("replay", body)), false)).To(Equal(first), "the replay finds the first runs")
			g.Expect(listRuns(g, ns)).To(HaveLen(before))

			fresh := runsOf(post(deliver("new", editPayload(t, tt.payload, tt.old, tt.new))), true)
			g.Expect(fresh).To(HaveLen(len(first)))
			g.Expect(listRuns(g, ns)).To(HaveLen(2 * before))

			// Past the window, the same body is a deliberate rebuild.
			srv.opts.Clock.(*clocktesting.FakeClock).Step(DefaultReplayWindow + time.Minute)
			later := runsOf(post(deliver("later", body)), true)
			g.Expect(later).To(HaveLen(len(first)))
			g.Expect(listRuns(g, ns)).To(HaveLen(3 * before))
		})
	}
}

func TestWebhookServer_svnCommitPostedTwiceStartsOneRun(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ns, srv := newWebhookTest(t)
	post := func(body []byte) webhookResponse {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, delivery{providerSVN, "Post-Commit", "", body, "good", ""}.request(ns))
		g.Expect(rec.Code).To(Equal(http.StatusAccepted), rec.Body.String())
		var resp webhookResponse
		g.Expect(json.Unmarshal(rec.Body.Bytes(), &resp)).To(Succeed())
		g.Expect(resp.Runs).To(HaveLen(1))
		return resp
	}
	first := post(readPayload(t, "svn-post-commit.json"))
	g.Expect(first.Runs[0].Created).To(BeTrue())
	again := post(readPayload(t, "svn-post-commit.json"))
	g.Expect(again.Runs[0].Created).To(BeFalse())
	g.Expect(again.Runs[0].Run).To(Equal(first.Runs[0].Run))
	g.Expect(listRuns(g, ns)).To(HaveLen(1))
	g.Expect(getTrigger(g, ns, "svn").Status.Count).To(Equal(1))

	// The next revision is a new commit and a new run.
	next := post(editPayload(t, "svn-post-commit.json", `"revision":"12"`, `"revision":"13"`))
	g.Expect(next.Runs[0].Created).To(BeTrue())
	runs := listRuns(g, ns)
	g.Expect(runs).To(HaveLen(2))
	g.Expect(getTrigger(g, ns, "svn").Status.Count).To(Equal(2))
	for _, r := range runs {
		if r.Name == next.Runs[0].Run {
			g.Expect(r.Annotations).To(HaveKeyWithValue(convention.AnnotationSCMDelivery, "svn/"+svnUUID+"/r13"))
			g.Expect(*r.Spec.ResourceParams[0].Parameters[0].Value).To(Equal("13"))
		}
	}
}

func TestWebhookServer_refusals(t *testing.T) {
	testcluster.Require(t)
	tests := []struct {
		name     string
		req      func(t *testing.T, ns string) *http.Request
		wantCode int
	}{
		{"A GET is refused", func(_ *testing.T, ns string) *http.Request {
			return httptest.NewRequest(http.MethodGet, WebhookPath+ns, nil)
		}, http.StatusMethodNotAllowed},
		{"A path without a namespace is refused", func(*testing.T, string) *http.Request {
			return httptest.NewRequest(http.MethodPost, WebhookPath, nil)
		}, http.StatusNotFound},
		{"A path that is not a namespace name is refused", func(_ *testing.T, ns string) *http.Request {
			return httptest.NewRequest(http.MethodPost, WebhookPath+ns+"/../kube-system", nil)
		}, http.StatusNotFound},
		{"A body declared over the limit is refused before it is read", func(_ *testing.T, ns string) *http.Request {
			req := delivery{providerGitHub, "push", "d", []byte("{}"), "good", ""}.request(ns)
			req.ContentLength = DefaultMaxBodyBytes + 1
			return req
		}, http.StatusRequestEntityTooLarge},
		{"A chunked body that grows over the limit is refused while it is read", func(t *testing.T, ns string) *http.Request {
			body := append([]byte(`{"x":"`), bytes.Repeat([]byte("x"), DefaultMaxBodyBytes)...)
			req := delivery{providerGitHub, "push", "d", body, "good", ""}.request(ns)
			req.ContentLength = -1
			return req
		}, http.StatusRequestEntityTooLarge},
		{"A delivery id longer than any UUID is refused", func(_ *testing.T, ns string) *http.Request {
			return delivery{providerGitHub, "push", strings.Repeat("d", 129), []byte("{}"), "good", ""}.request(ns)
		}, http.StatusBadRequest},
		{"A signed body that is not JSON is refused", func(_ *testing.T, ns string) *http.Request {
			return delivery{providerGitHub, "push", "d", []byte("payload=%7B%7D"), "good", ""}.request(ns)
		}, http.StatusBadRequest},
		{"A trigger whose Secret is gone can no longer be fired", func(t *testing.T, ns string) *http.Request {
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "scm-demo", Namespace: ns}}
			NewWithT(t).Expect(k8sClient.Delete(context.Background(), sec)).To(Succeed())
			return delivery{providerGitHub, "push", "d", readPayload(t, "github-push.json"), "good", ""}.request(ns)
		}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns, srv := newWebhookTest(t)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, tt.req(t, ns))
			g.Expect(rec.Code).To(Equal(tt.wantCode), rec.Body.String())
			g.Expect(listRuns(g, ns)).To(BeEmpty())
		})
	}
}

func TestWebhookServer_neverLogsSecrets(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ns, _ := newWebhookTest(t)
	var logs strings.Builder
	log := funcr.New(func(prefix, args string) { logs.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 10})
	srv := NewWebhookServer(k8sClient, WebhookOptions{Logger: log})
	for _, d := range []delivery{
		{providerGitHub, "push", "d-1", readPayload(t, "github-push.json"), "good", ""},
		{providerGitHub, "push", "d-2", readPayload(t, "github-push.json"), "bad", ""},
		{providerGitLab, "Push Hook", "d-3", readPayload(t, "gitlab-push.json"), "good", ""},
		{providerGitLab, "Push Hook", "d-4", readPayload(t, "gitlab-push.json"), "good", mirrorSecret},
		{providerSVN, "Post-Commit", "", readPayload(t, "svn-post-commit.json"), "good", ""},
		{providerSVN, "Post-Commit", "", readPayload(t, "svn-post-commit.json"), "good", mirrorSecret},
	} {
		srv.ServeHTTP(httptest.NewRecorder(), d.request(ns))
	}
	g.Expect(logs.String()).To(ContainSubstring("Started run"), "the logger is wired")
	g.Expect(logs.String()).NotTo(ContainSubstring(demoSecret))
	g.Expect(logs.String()).NotTo(ContainSubstring(mirrorSecret))
}

func TestWebhookServer_rotatedSecretTakesEffectWithinTheTTL(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ns, _ := newWebhookTest(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC))
	srv := NewWebhookServer(k8sClient, WebhookOptions{Clock: clk})
	post := func(id, secret string) int {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, delivery{providerGitHub, "push", id, readPayload(t, "github-push.json"), "good", secret}.request(ns))
		return rec.Code
	}
	g.Expect(post("before", demoSecret)).To(Equal(http.StatusAccepted))

	sec := &corev1.Secret{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "scm-demo"}, sec)).To(Succeed())
	sec.Data[SecretKey] = []byte("rotated")
	g.Expect(k8sClient.Update(context.Background(), sec)).To(Succeed())

	g.Expect(post("within-ttl", demoSecret)).To(Equal(http.StatusAccepted), "the secret read last is reused for SecretTTL")
	clk.Step(SecretTTL)
	g.Expect(post("old-secret", demoSecret)).To(Equal(http.StatusUnauthorized))
	g.Expect(post("new-secret", "rotated")).To(Equal(http.StatusAccepted))
}

// TestHA_webhookOnEveryReplicaStartsOneRun: every replica serves
// webhooks, leader or not, and a provider retries a slow delivery and
// may resend it under a new id. The same event reaching two replicas at
// once still starts one run, and the trigger counts it once.
func TestHA_webhookOnEveryReplicaStartsOneRun(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ns, first := newWebhookTest(t)
	second := NewWebhookServer(k8sClient, WebhookOptions{
		Recorder: events.NewFakeRecorder(100),
		Clock:    clocktesting.NewFakeClock(time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)),
	})
	body := readPayload(t, "github-push.json")
	const posts = 8
	responses := make(chan webhookResponse, posts)
	var wg sync.WaitGroup
	for i := range posts {
		srv := []*WebhookServer{first, second}[i%2]
		d := delivery{providerGitHub, "push", fmt.Sprintf("delivery-%d", i%3), body, "good", ""}
		wg.Go(func() {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, d.request(ns))
			var resp webhookResponse
			if rec.Code != http.StatusAccepted || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
				t.Errorf("delivery %s: %d %s", d.id, rec.Code, rec.Body.String())
			}
			responses <- resp
		})
	}
	wg.Wait()
	close(responses)
	created, names := 0, map[string]bool{}
	for resp := range responses {
		for _, fr := range resp.Runs {
			if fr.Trigger != "build" {
				continue
			}
			names[fr.Run] = true
			if fr.Created {
				created++
			}
		}
	}
	g.Expect(created).To(Equal(1), "runs created")
	g.Expect(names).To(HaveLen(1), "every response names the one run")
	runs := runsByTrigger(g, ns)
	g.Expect(runs["build"]).To(HaveLen(1))
	g.Eventually(func(g Gomega) {
		g.Expect(getTrigger(g, ns, "build").Status.Count).To(Equal(1))
	}).Should(Succeed())
}

// TestHA_webhookReplicasAcrossAWindowBoundaryStartOneRun: two replicas
// whose clocks read either side of a replay window's boundary, one a
// second behind the other, get the same event at once. Each looks for the
// event's runs before either has created one, and both must still agree
// on one run.
func TestHA_webhookReplicasAcrossAWindowBoundaryStartOneRun(t *testing.T) {
	testcluster.Require(t)
	g := NewWithT(t)
	ns, _ := newWebhookTest(t)
	together := &listTogether{Reader: k8sClient, arrived: map[string]chan struct{}{}}
	boundary := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	servers := []*WebhookServer{}
	for _, at := range []time.Time{boundary.Add(-500 * time.Millisecond), boundary.Add(500 * time.Millisecond)} {
		servers = append(servers, NewWebhookServer(k8sClient, WebhookOptions{
			APIReader: together,
			Recorder:  events.NewFakeRecorder(100),
			Clock:     clocktesting.NewFakeClock(at),
		}))
	}
	body := readPayload(t, "github-push.json")
	var wg sync.WaitGroup
	for i, srv := range servers {
		d := delivery{providerGitHub, "push", fmt.Sprintf("delivery-%d", i), body, "good", ""}
		wg.Go(func() {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, d.request(ns))
			if rec.Code != http.StatusAccepted {
				t.Errorf("delivery %s: %d %s", d.id, rec.Code, rec.Body.String())
			}
		})
	}
	wg.Wait()
	g.Expect(together.met.Load()).To(BeNumerically(">", 0), "the deliveries looked for runs together")
	names := func() []string {
		var out []string
		for _, r := range runsByTrigger(g, ns)["build"] {
			out = append(out, r.Name+" #"+r.Annotations[convention.AnnotationSCMSequence])
		}
		sort.Strings(out)
		return out
	}
	g.Expect(names()).To(HaveLen(1), "runs of the event")

	// An hour on, the same event is a deliberate rebuild: the next run.
	later := NewWebhookServer(k8sClient, WebhookOptions{
		Recorder: events.NewFakeRecorder(100),
		Clock:    clocktesting.NewFakeClock(boundary.Add(DefaultReplayWindow + time.Second)),
	})
	rec := httptest.NewRecorder()
	later.ServeHTTP(rec, delivery{providerGitHub, "push", "rebuild", body, "good", ""}.request(ns))
	g.Expect(rec.Code).To(Equal(http.StatusAccepted), rec.Body.String())
	g.Expect(names()).To(ConsistOf(HaveSuffix(" #1"), HaveSuffix(" #2")), "runs of the event")
}

// listTogether is an API reader whose listings of an event's runs wait,
// for up to five seconds, for a second listing of the same runs: two
// deliveries then both look before either creates, the interleaving in
// which each could take itself for the first.
type listTogether struct {
	client.Reader
	mu      sync.Mutex
	arrived map[string]chan struct{}
	met     atomic.Int32
}

func (l *listTogether) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := l.Reader.List(ctx, list, opts...)
	if _, ok := list.(*cyclonev1alpha1.WorkflowRunList); !ok {
		return err
	}
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	key := o.Namespace + "/" + o.LabelSelector.String()
	l.mu.Lock()
	ch, waiting := l.arrived[key]
	if waiting {
		delete(l.arrived, key)
		close(ch)
		l.met.Add(1)
		l.mu.Unlock()
		return err
	}
	ch = make(chan struct{})
	l.arrived[key] = ch
	l.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
	}
	return err
}
