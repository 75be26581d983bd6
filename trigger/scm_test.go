package trigger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editPayload is a payload of testdata with old replaced by new, which
// must be there.
func editPayload(t testing.TB, name, old, new string) []byte {
	t.Helper()
	b := readPayload(t, name)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s holds no %s", name, old)
	}
	return bytes.ReplaceAll(b, []byte(old), []byte(new))
}

// svnUUID is the repository UUID in testdata/svn-post-commit.json.
const svnUUID = "8f1c6a2e-3b4d-11ef-9a7e-0242ac120002"

// githubSignature is what GitHub sends as X-Hub-Signature-256.
func githubSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestAuthentic(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	tests := []struct {
		name     string
		provider string
		header   http.Header
		secret   string
		want     bool
	}{
		{"A GitHub signature made with the secret is accepted", providerGitHub,
			http.Header{"X-Hub-Signature-256": {githubSignature("s3cr3t", body)}}, "s3cr3t", true},
		{"A GitHub signature made with another secret is refused", providerGitHub,
			http.Header{"X-Hub-Signature-256": {githubSignature("guess", body)}}, "s3cr3t", false},
		{"A GitHub signature of another body is refused", providerGitHub,
			http.Header{"X-Hub-Signature-256": {githubSignature("s3cr3t", []byte(`{}`))}}, "s3cr3t", false},
		{"A GitHub signature without the sha256 prefix is refused", providerGitHub,
			http.Header{"X-Hub-Signature-256": {githubSignature("s3cr3t", body)[7:]}}, "s3cr3t", false},
		{"A GitHub signature that is not hex is refused", providerGitHub,
			http.Header{"X-Hub-Signature-256": {"sha256=zz"}}, "s3cr3t", false},
		{"An unsigned GitHub request is refused", providerGitHub, http.Header{}, "s3cr3t", false},
		{"The legacy SHA-1 GitHub signature alone is refused", providerGitHub,
			http.Header{"X-Hub-Signature": {"sha1=0000"}}, "s3cr3t", false},
		{"A GitLab token equal to the secret is accepted", providerGitLab,
			http.Header{"X-Gitlab-Token": {"s3cr3t"}}, "s3cr3t", true},
		{"A GitLab token that differs is refused", providerGitLab,
			http.Header{"X-Gitlab-Token": {"s3cr3T"}}, "s3cr3t", false},
		{"A GitLab request without a token is refused", providerGitLab, http.Header{}, "s3cr3t", false},
		{"An SVN token equal to the secret is accepted", providerSVN,
			http.Header{"X-Subversion-Token": {"s3cr3t"}}, "s3cr3t", true},
		{"An SVN token that differs is refused", providerSVN,
			http.Header{"X-Subversion-Token": {"s3cr3T"}}, "s3cr3t", false},
		{"An SVN request without a token is refused", providerSVN, http.Header{}, "s3cr3t", false},
		{"An SVN request carrying the secret as a GitLab token is refused", providerSVN,
			http.Header{"X-Gitlab-Token": {"s3cr3t"}}, "s3cr3t", false},
		{"An empty secret accepts nothing, not even an empty signature", providerGitLab,
			http.Header{"X-Gitlab-Token": {""}}, "", false},
		{"A Bitbucket Server signature made with the secret is accepted", providerBitbucketServer,
			http.Header{"X-Hub-Signature": {githubSignature("s3cr3t", body)}}, "s3cr3t", true},
		{"A Bitbucket Cloud signature made with another secret is refused", providerBitbucketCloud,
			http.Header{"X-Hub-Signature": {githubSignature("guess", body)}}, "s3cr3t", false},
		{"A Bitbucket signature sent in GitHub's header is refused", providerBitbucketCloud,
			http.Header{"X-Hub-Signature-256": {githubSignature("s3cr3t", body)}}, "s3cr3t", false},
		{"A Gitea signature, bare hex, made with the secret is accepted", providerGitea,
			http.Header{"X-Gitea-Signature": {githubSignature("s3cr3t", body)[7:]}}, "s3cr3t", true},
		{"A Gitea request signed only in GitHub's header is refused", providerGitea,
			http.Header{"X-Hub-Signature-256": {githubSignature("s3cr3t", body)}}, "s3cr3t", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(authentic(tt.provider, tt.header, body, []byte(tt.secret))).To(Equal(tt.want))
		})
	}
}

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name      string
		provider  string
		eventType string
		body      []byte
		want      scmEvent
	}{
		{"A GitHub branch push is a push of its head commit", providerGitHub, "push", readPayload(t, "github-push.json"),
			scmEvent{provider: providerGitHub, kind: eventPush, repo: "gyreops/demo", ref: "refs/heads/main", branch: "main", sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}},
		{"A GitHub tag push is a tag event", providerGitHub, "push", readPayload(t, "github-push-tag.json"),
			scmEvent{provider: providerGitHub, kind: eventTag, repo: "gyreops/demo", ref: "refs/tags/v1.4.0", sha: "9c3b1f0e7a52d4be0f7d2cdd3b8a06f3e41c2b77"}},
		{"A GitHub branch deletion fires nothing", providerGitHub, "push", readPayload(t, "github-push-deleted.json"),
			scmEvent{provider: providerGitHub, repo: "gyreops/demo"}},
		{"A GitHub pull request builds its head commit for its base branch", providerGitHub, "pull_request", readPayload(t, "github-pull-request.json"),
			scmEvent{provider: providerGitHub, kind: eventPullRequest, repo: "gyreops/demo", ref: "refs/pull/42/head", branch: "main", sha: "e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0"}},
		{"A GitHub ping is a ping", providerGitHub, "ping", readPayload(t, "github-ping.json"),
			scmEvent{provider: providerGitHub, kind: eventPing, repo: "gyreops/demo"}},
		{"A GitHub event of another type fires nothing", providerGitHub, "star", readPayload(t, "github-ping.json"),
			scmEvent{provider: providerGitHub, repo: "gyreops/demo"}},
		{"A GitLab push is a push of its checkout commit", providerGitLab, "Push Hook", readPayload(t, "gitlab-push.json"),
			scmEvent{provider: providerGitLab, kind: eventPush, repo: "gyreops/demo", ref: "refs/heads/main", branch: "main", sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}},
		{"A GitLab tag push is a tag event", providerGitLab, "Tag Push Hook", readPayload(t, "gitlab-tag-push.json"),
			scmEvent{provider: providerGitLab, kind: eventTag, repo: "gyreops/demo", ref: "refs/tags/v1.4.0", sha: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"}},
		{"A GitLab merge request update with new commits builds its last commit", providerGitLab, "Merge Request Hook", readPayload(t, "gitlab-merge-request.json"),
			scmEvent{provider: providerGitLab, kind: eventPullRequest, repo: "gyreops/demo", ref: "refs/merge-requests/17/head", branch: "main", sha: "b83d6e391c22777fca1ed3012fce84f633d7fed0"}},
		{"A new GitHub comment on an open pull request builds the pull request's head ref", providerGitHub, "issue_comment", readPayload(t, "github-pull-request-comment.json"),
			scmEvent{provider: providerGitHub, kind: eventPullRequestComment, repo: "gyreops/demo", ref: "refs/pull/42/head", comment: "/test\r\n", commentID: "3344556677"}},
		{"An edited GitHub comment fires nothing", providerGitHub, "issue_comment",
			editPayload(t, "github-pull-request-comment.json", `"action": "created"`, `"action": "edited"`),
			scmEvent{provider: providerGitHub, repo: "gyreops/demo"}},
		{"A GitHub comment on a closed pull request fires nothing", providerGitHub, "issue_comment",
			editPayload(t, "github-pull-request-comment.json", `"state": "open"`, `"state": "closed"`),
			scmEvent{provider: providerGitHub, repo: "gyreops/demo"}},
		{"A GitHub comment on an issue that is not a pull request fires nothing", providerGitHub, "issue_comment", readPayload(t, "github-issue-comment.json"),
			scmEvent{provider: providerGitHub, repo: "gyreops/demo"}},
		{"A new GitLab note on an open merge request builds its last commit", providerGitLab, "Note Hook", readPayload(t, "gitlab-merge-request-note.json"),
			scmEvent{provider: providerGitLab, kind: eventPullRequestComment, repo: "gyreops/demo", ref: "refs/merge-requests/17/head", branch: "main", sha: "b83d6e391c22777fca1ed3012fce84f633d7fed0", comment: "/test", commentID: "1244"}},
		{"A GitLab note from a version that sends no action counts as new", providerGitLab, "Note Hook",
			editPayload(t, "gitlab-merge-request-note.json", `"action": "create",`, ``),
			scmEvent{provider: providerGitLab, kind: eventPullRequestComment, repo: "gyreops/demo", ref: "refs/merge-requests/17/head", branch: "main", sha: "b83d6e391c22777fca1ed3012fce84f633d7fed0", comment: "/test", commentID: "1244"}},
		{"A GitLab note on a merge request whose last commit is missing builds its head ref", providerGitLab, "Note Hook",
			editPayload(t, "gitlab-merge-request-note.json", `"id": "b83d6e391c22777fca1ed3012fce84f633d7fed0"`, `"id": ""`),
			scmEvent{provider: providerGitLab, kind: eventPullRequestComment, repo: "gyreops/demo", ref: "refs/merge-requests/17/head", branch: "main", comment: "/test", commentID: "1244"}},
		{"An edited GitLab note fires nothing", providerGitLab, "Note Hook",
			editPayload(t, "gitlab-merge-request-note.json", `"action": "create"`, `"action": "update"`),
			scmEvent{provider: providerGitLab, repo: "gyreops/demo"}},
		{"A GitLab note on a merged merge request fires nothing", providerGitLab, "Note Hook",
			editPayload(t, "gitlab-merge-request-note.json", `"state": "opened"`, `"state": "merged"`),
			scmEvent{provider: providerGitLab, repo: "gyreops/demo"}},
		{"A GitLab note on a commit fires nothing", providerGitLab, "Note Hook",
			editPayload(t, "gitlab-merge-request-note.json", `"noteable_type": "MergeRequest"`, `"noteable_type": "Commit"`),
			scmEvent{provider: providerGitLab, repo: "gyreops/demo"}},
		{"An SVN post-commit builds its revision and lists the two-field lines of svnlook changed", providerSVN, "Post-Commit", readPayload(t, "svn-post-commit.json"),
			scmEvent{provider: providerSVN, delivery: svnUUID + "/r12", kind: eventPostCommit, repo: svnUUID, ref: "12", sha: "12",
				changed: []string{"trunk/README.txt", "trunk/app/main.go", "trunk/app/"}}},
		{"An SVN revision written with leading zeros is the same commit", providerSVN, "Post-Commit",
			editPayload(t, "svn-post-commit.json", `"revision":"12"`, `"revision":"012"`),
			scmEvent{provider: providerSVN, delivery: svnUUID + "/r12", kind: eventPostCommit, repo: svnUUID, ref: "12", sha: "12",
				changed: []string{"trunk/README.txt", "trunk/app/main.go", "trunk/app/"}}},
		{"An SVN post-commit that lists no changes still builds its revision", providerSVN, "Post-Commit",
			[]byte(`{"repoUUID":"` + svnUUID + `", "revision":"7"}`),
			scmEvent{provider: providerSVN, delivery: svnUUID + "/r7", kind: eventPostCommit, repo: svnUUID, ref: "7", sha: "7"}},
		{"An SVN event of another type fires nothing", providerSVN, "Post-Lock", readPayload(t, "svn-post-commit.json"),
			scmEvent{provider: providerSVN, repo: svnUUID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			e, err := parseEvent(tt.provider, tt.eventType, tt.body)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(e).To(Equal(tt.want))
		})
	}
	t.Run("A body that is not JSON is refused", func(t *testing.T) {
		g := NewWithT(t)
		_, err := parseEvent(providerGitHub, "push", []byte("ref=main"))
		g.Expect(err).To(HaveOccurred())
	})
	t.Run("An event that names no repository is refused", func(t *testing.T) {
		g := NewWithT(t)
		_, err := parseEvent(providerGitLab, "Push Hook", []byte(`{"ref":"refs/heads/main","checkout_sha":"abc","after":"abc"}`))
		g.Expect(err).To(MatchError(ContainSubstring("names no repository")))
	})
	t.Run("A pull request that names no commit is refused", func(t *testing.T) {
		g := NewWithT(t)
		_, err := parseEvent(providerGitHub, "pull_request", editPayload(t, "github-pull-request.json",
			`"sha": "e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0"`, `"sha": ""`))
		g.Expect(err).To(MatchError(ContainSubstring("names no commit")))
	})
	svnRefusals := []struct {
		name    string
		body    []byte
		wantErr string
	}{
		{"An SVN post-commit without a repository UUID is refused",
			editPayload(t, "svn-post-commit.json", `"repoUUID":"`+svnUUID+`"`, `"repoUUID":""`), "names no repository"},
		{"An SVN post-commit without a revision is refused",
			editPayload(t, "svn-post-commit.json", `"revision":"12", `, ``), "names no revision"},
		{"An SVN post-commit whose revision is not a number is refused",
			editPayload(t, "svn-post-commit.json", `"revision":"12"`, `"revision":"HEAD"`), "names no revision"},
		// The hook in Cyclone's user guide pastes svnlook's output into the
		// JSON as it is; the README's hook escapes it.
		{"An SVN post-commit with raw line breaks inside a JSON string is refused",
			editPayload(t, "svn-post-commit.json", `\n`, "\n"), "invalid character"},
		{"An SVN repository UUID too long for a delivery id is refused",
			editPayload(t, "svn-post-commit.json", svnUUID, strings.Repeat("f", maxDeliveryIDLength)), "longer than"},
	}
	for _, tt := range svnRefusals {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := parseEvent(providerSVN, "Post-Commit", tt.body)
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
		})
	}
}

func TestMatches(t *testing.T) {
	policy := cyclonev1alpha1.SCMTriggerPolicy{
		Push:        cyclonev1alpha1.SCMTriggerPush{SCMTriggerBasic: cyclonev1alpha1.SCMTriggerBasic{Enabled: true}, Branches: []string{"main", "release/*"}},
		PullRequest: cyclonev1alpha1.SCMTriggerPullRequest{SCMTriggerBasic: cyclonev1alpha1.SCMTriggerBasic{Enabled: true}},
		PullRequestComment: cyclonev1alpha1.SCMTriggerPullRequestComment{
			SCMTriggerBasic: cyclonev1alpha1.SCMTriggerBasic{Enabled: true}, Comments: []string{"/test", "/retest "},
		},
		PostCommit: cyclonev1alpha1.SCMTriggerPostCommit{
			SCMTriggerBasic: cyclonev1alpha1.SCMTriggerBasic{Enabled: true},
			RootURL:         "https://svn.example.com/repos/demo",
			WorkflowURL:     "https://svn.example.com/repos/demo/trunk/app",
		},
	}
	commentsOff := policy
	commentsOff.PullRequestComment.Enabled = false
	noComments := policy
	noComments.PullRequestComment.Comments = nil
	postCommitOff := policy
	postCommitOff.PostCommit.Enabled = false
	noRootURL := policy
	noRootURL.PostCommit.RootURL = ""
	tests := []struct {
		name   string
		policy cyclonev1alpha1.SCMTriggerPolicy
		e      scmEvent
		want   bool
	}{
		{"A push to a listed branch fires", policy, scmEvent{kind: eventPush, branch: "main"}, true},
		{"A push to a branch matching a glob fires", policy, scmEvent{kind: eventPush, branch: "release/1.4"}, true},
		{"A push to another branch does not fire", policy, scmEvent{kind: eventPush, branch: "feature/x"}, false},
		{"A pull request to any branch fires when no branches are listed", policy, scmEvent{kind: eventPullRequest, branch: "dev"}, true},
		{"A tag does not fire when tag releases are off", policy, scmEvent{kind: eventTag}, false},
		{"An event of no kind never fires", policy, scmEvent{}, false},
		{"A listed comment fires", policy, scmEvent{kind: eventPullRequestComment, comment: "/test"}, true},
		{"A listed comment ending in a line break still fires", policy, scmEvent{kind: eventPullRequestComment, comment: "/test\r\n"}, true},
		{"A comment fires on a listed entry with surrounding spaces", policy, scmEvent{kind: eventPullRequestComment, comment: "/retest"}, true},
		{"A comment that only starts with a listed one does not fire", policy, scmEvent{kind: eventPullRequestComment, comment: "/test please"}, false},
		{"A listed comment in another case does not fire", policy, scmEvent{kind: eventPullRequestComment, comment: "/Test"}, false},
		{"A listed comment does not fire when the comment policy is off", commentsOff, scmEvent{kind: eventPullRequestComment, comment: "/test"}, false},
		{"No comment fires when none are listed", noComments, scmEvent{kind: eventPullRequestComment, comment: "/test"}, false},
		{"A commit that changed a file under the workflow URL fires", policy,
			scmEvent{kind: eventPostCommit, changed: []string{"trunk/README.txt", "trunk/app/main.go"}}, true},
		{"A commit that changed no file under the workflow URL does not fire", policy,
			scmEvent{kind: eventPostCommit, changed: []string{"trunk/README.txt", "branches/v1/app/main.go"}}, false},
		{"A commit that lists no changed files fires", policy, scmEvent{kind: eventPostCommit}, true},
		{"Any commit fires when no root URL is set", noRootURL,
			scmEvent{kind: eventPostCommit, changed: []string{"branches/v1/app/main.go"}}, true},
		{"A commit under the workflow URL does not fire when the post-commit policy is off", postCommitOff,
			scmEvent{kind: eventPostCommit, changed: []string{"trunk/app/main.go"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(matches(tt.policy, tt.e)).To(Equal(tt.want))
		})
	}
}

func TestSCMEvent_variables(t *testing.T) {
	tests := []struct {
		name         string
		e            scmEvent
		wantRevision string
	}{
		{"An event that names a commit builds the commit",
			scmEvent{kind: eventPullRequestComment, ref: "refs/merge-requests/17/head", sha: "b83d6e391c22777fca1ed3012fce84f633d7fed0"},
			"b83d6e391c22777fca1ed3012fce84f633d7fed0"},
		{"A comment that names no commit builds its pull request's head ref",
			scmEvent{kind: eventPullRequestComment, ref: "refs/pull/42/head"}, "refs/pull/42/head"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.e.variables()).To(ContainElements(
				cyclonev1alpha1.GlobalVariable{Name: VarSCMEvent, Value: eventPullRequestComment},
				cyclonev1alpha1.GlobalVariable{Name: VarSCMRef, Value: tt.e.ref},
				cyclonev1alpha1.GlobalVariable{Name: VarSCMRevision, Value: tt.wantRevision},
			))
		})
	}
}

func TestSameRepo(t *testing.T) {
	tests := []struct {
		name, provider, spec, repo string
		want                       bool
	}{
		{"The full name matches whatever its case", providerGitHub, "GyreOps/Demo", "gyreops/demo", true},
		{"A clone URL names its repository", providerGitHub, "https://github.com/gyreops/demo.git", "gyreops/demo", true},
		{"A GitLab subgroup path matches in full", providerGitLab, "group/sub/demo", "group/sub/demo", true},
		{"Another repository does not match", providerGitHub, "gyreops/other", "gyreops/demo", false},
		{"An empty spec matches nothing", providerGitHub, "", "gyreops/demo", false},
		{"An SVN repository UUID matches whatever its case", providerSVN, strings.ToUpper(svnUUID), svnUUID, true},
		{"A URL ending in an SVN repository UUID does not name the repository", providerSVN, "https://svn.example.com/" + svnUUID, svnUUID, false},
		{"An SVN repository UUID with a .git suffix does not name the repository", providerSVN, svnUUID + ".git", svnUUID, false},
		{"Another SVN repository UUID does not match", providerSVN, "8f1c6a2e-3b4d-11ef-9a7e-0242ac120003", svnUUID, false},
		{"An empty spec matches no SVN repository", providerSVN, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(sameRepo(tt.provider, tt.spec, tt.repo)).To(Equal(tt.want))
		})
	}
}
