package receiver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/receiver"
)

// pushEvents lists the PushReceived events recorded on repo.
func pushEvents(g Gomega, repo *gyrev1alpha1.Repository) []string {
	var list eventsv1.EventList
	g.Expect(testEnv.Client.List(context.Background(), &list)).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Repository" && e.Regarding.Name == repo.Name && e.Reason == receiver.ReasonPushReceived {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func TestReceiver_pushFetchesAtOnce(t *testing.T) {
	g := NewWithT(t)
	f := newPushFixture(t, g)
	for _, tc := range []struct {
		name     string
		provider string
		// url is the Repository's spec.url, from the repository's URLs.
		url func(urls) string
	}{
		{"A signed GitHub push brings the Repository and its Tenant to the new commit although the poll is an hour away.",
			receiver.ProviderGitHub, func(u urls) string { return u.clone }},
		{"A GitLab push with the Repository's token brings it and its Tenant to the new commit.",
			receiver.ProviderGitLab, func(u urls) string { return u.clone }},
		{"A signed Bitbucket Cloud push, which names the repository by its web page only, brings the Repository to the new commit.",
			receiver.ProviderBitbucket, func(u urls) string { return u.clone }},
		{"A signed Bitbucket Server push brings the Repository to the new commit.",
			"bitbucket-server", func(u urls) string { return u.clone }},
		{"A signed Gitea push, which carries GitHub's headers too, brings the Repository to the new commit.",
			receiver.ProviderGitea, func(u urls) string { return u.clone }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tenant := uniqueName("push-")
			// A secret of the case's own: the other cases' Repositories
			// follow the same URL and must not fetch.
			secret := uniqueName("s3cret-")
			first := f.publish(tenant, "one")
			repo := f.newRepository(g, tc.url(f.localURLs()), f.newSecret(g, secret))
			f.newTenant(g, tenant, repo)
			expectTenantAt(g, tenant, revision(first))

			second := f.publish(tenant, "two")
			d := pushDelivery(tc.provider, f.localURLs(), second)
			code, resp := sendOK(g, func() *http.Request { return d.request(f.hookURL, secret) })
			g.Expect(code).To(Equal(http.StatusAccepted), resp.Message)
			g.Expect(resp.Repositories).To(ConsistOf(repo.Name))
			expectTenantAt(g, tenant, revision(second))
			g.Eventually(func(g Gomega) {
				g.Expect(pushEvents(g, repo)).To(ContainElement(ContainSubstring(second)))
			}).WithTimeout(10 * time.Second).Should(Succeed())
		})
	}
}

func TestReceiver_matchesEveryURLOfTheRepository(t *testing.T) {
	g := NewWithT(t)
	f := newPushFixture(t, g)
	secret := uniqueName("s3cret-")
	secretName := f.newSecret(g, secret)
	u := f.localURLs()
	cases := []struct {
		name    string
		url     string
		webhook bool
		want    bool
		suspend bool
	}{
		{"A Repository of the clone URL is asked to fetch.", u.clone, true, true, false},
		{"A Repository of the clone URL without .git is asked to fetch.", strings.TrimSuffix(u.clone, ".git"), true, true, false},
		{"A Repository of the clone URL with a trailing slash is asked to fetch.", u.clone + "/", true, true, false},
		{"A Repository of the scp-like SSH URL is asked to fetch.", u.ssh, true, true, false},
		{"A Repository of the SSH URL in ssh:// form, host in capitals and without .git, is asked to fetch.", "ssh://git@GIT.Example.COM/team/pipelines", true, true, false},
		{"A Repository of another repository on the same Git server is not asked.", f.git.URL + "/pipelines-other.git", true, false, false},
		{"A Repository of the SSH URL's path over HTTPS, which the event does not name, is not asked.", "https://git.example.com/team/pipelines.git", true, false, false},
		{"A Repository of the clone URL without spec.webhook is never asked.", u.clone, false, false, false},
		{"A suspended Repository of the clone URL is not asked: it fetches nothing until resumed.", u.clone, true, false, true},
	}
	repos := make([]*gyrev1alpha1.Repository, len(cases))
	var want []string
	for i, tc := range cases {
		name := ""
		if tc.webhook {
			name = secretName
		}
		repos[i] = f.newRepository(g, tc.url, name, func(s *gyrev1alpha1.RepositorySpec) { s.Suspend = tc.suspend })
		if tc.want {
			want = append(want, repos[i].Name)
		}
	}
	sha := f.publish("matching", "one")
	d := pushDelivery(receiver.ProviderGitHub, u, sha)
	// The receiver lists Repositories from the manager's cache, which
	// sees the new ones within moments.
	g.Eventually(func(g Gomega) {
		code, resp := send(g, d.request(f.hookURL, secret))
		g.Expect(code).To(Equal(http.StatusAccepted), resp.Message)
		g.Expect(resp.Repositories).To(ConsistOf(want))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			if tc.want {
				g.Expect(requestedAt(g, repos[i])).NotTo(BeEmpty())
			} else {
				g.Expect(requestedAt(g, repos[i])).To(BeEmpty())
			}
		})
	}
}

func TestReceiver_refusesWhatIsNotAnAuthenticPush(t *testing.T) {
	g := NewWithT(t)
	f := newPushFixture(t, g)
	secret := uniqueName("s3cret-")
	first := f.publish("refusals", "one")
	repo := f.newRepository(g, f.cloneURL, f.newSecret(g, secret))
	g.Eventually(func(g Gomega) { g.Expect(artifactRevision(g, repo)).To(Equal(revision(first))) }).
		WithTimeout(30 * time.Second).Should(Succeed())
	// A commit the Repository would fetch if anything asked it to.
	second := f.publish("refusals", "two")
	u := f.localURLs()

	huge := pushDelivery(receiver.ProviderGitHub, u, second)
	huge.body = append(huge.body[:len(huge.body)-1], []byte(`,"padding":"`+strings.Repeat("x", receiver.DefaultMaxBodyBytes)+`"}`)...)
	withEvent := func(d delivery, event string) delivery { d.event = event; return d }
	for _, tc := range []struct {
		name     string
		delivery delivery
		secret   string
		want     int
	}{
		{"A GitHub push signed with another secret gets 401.", pushDelivery(receiver.ProviderGitHub, u, second), "wrong", http.StatusUnauthorized},
		{"A GitHub push without a signature gets 401.", pushDelivery(receiver.ProviderGitHub, u, second), "", http.StatusUnauthorized},
		{"A GitLab push with another token gets 401.", pushDelivery(receiver.ProviderGitLab, u, second), "wrong", http.StatusUnauthorized},
		{"A Bitbucket push signed with another secret gets 401.", pushDelivery(receiver.ProviderBitbucket, u, second), "wrong", http.StatusUnauthorized},
		{"A Bitbucket Server push without a signature gets 401.", pushDelivery("bitbucket-server", u, second), "", http.StatusUnauthorized},
		{"A Gitea push signed with another secret gets 401.", pushDelivery(receiver.ProviderGitea, u, second), "wrong", http.StatusUnauthorized},
		{"A GitHub ping is answered with 200 and asks for nothing.", withEvent(pushDelivery(receiver.ProviderGitHub, u, second), "ping"), secret, http.StatusOK},
		{"A GitHub issues event, which is no push, gets 200 and asks for nothing.", withEvent(pushDelivery(receiver.ProviderGitHub, u, second), "issues"), secret, http.StatusOK},
		{"A GitLab merge request event gets 200 and asks for nothing.", withEvent(pushDelivery(receiver.ProviderGitLab, u, second), "Merge Request Hook"), secret, http.StatusOK},
		{"A signed push whose body is over the limit gets 413.", huge, secret, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			code, resp := sendOK(g, func() *http.Request { return tc.delivery.request(f.hookURL, tc.secret) })
			g.Expect(code).To(Equal(tc.want), resp.Message)
			g.Expect(resp.Repositories).To(BeEmpty())
			g.Expect(requestedAt(g, repo)).To(BeEmpty())
			g.Consistently(func(g Gomega) { g.Expect(artifactRevision(g, repo)).To(Equal(revision(first))) }).
				WithTimeout(500 * time.Millisecond).Should(Succeed())
		})
	}

	// The same push, signed with the Repository's secret, is fetched: the
	// refusals above were the signatures', not the setup's.
	code, resp := send(g, pushDelivery(receiver.ProviderGitHub, u, second).request(f.hookURL, secret))
	g.Expect(code).To(Equal(http.StatusAccepted), resp.Message)
	g.Eventually(func(g Gomega) { g.Expect(artifactRevision(g, repo)).To(Equal(revision(second))) }).
		WithTimeout(30 * time.Second).Should(Succeed())
}

func TestReceiver_eachRepositoryTakesOnlyItsOwnSecret(t *testing.T) {
	g := NewWithT(t)
	f := newPushFixture(t, g)
	alphaSecret, betaSecret := uniqueName("alpha-"), uniqueName("beta-")
	alpha := f.newRepository(g, f.cloneURL, f.newSecret(g, alphaSecret))
	beta := f.newRepository(g, f.cloneURL, f.newSecret(g, betaSecret))
	// A Repository whose Secret is missing, and one whose Secret lacks
	// the key, take no signature at all.
	missing := f.newRepository(g, f.cloneURL, "no-such-secret")
	empty := f.newRepository(g, f.cloneURL, f.newSecretData(g, map[string][]byte{"token": []byte(alphaSecret)}))
	sha := f.publish("secrets", "one")
	for _, tc := range []struct {
		name   string
		secret string
		want   []*gyrev1alpha1.Repository
	}{
		{"A push signed with one Repository's secret asks that Repository only, not the other of the same URL.", alphaSecret, []*gyrev1alpha1.Repository{alpha}},
		{"A push signed with the other Repository's secret asks the other only.", betaSecret, []*gyrev1alpha1.Repository{beta}},
		{"A push signed with a secret of neither asks none and gets 401.", "neither", nil},
		{"A push signed with an empty secret, as a Repository without one would have, asks none.", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			before := map[string]string{}
			for _, r := range []*gyrev1alpha1.Repository{alpha, beta, missing, empty} {
				before[r.Name] = requestedAt(g, r)
			}
			d := pushDelivery(receiver.ProviderGitHub, f.localURLs(), sha)
			var want []string
			for _, r := range tc.want {
				want = append(want, r.Name)
			}
			g.Eventually(func(g Gomega) {
				code, resp := send(g, d.request(f.hookURL, tc.secret))
				if len(want) == 0 {
					g.Expect(code).To(Equal(http.StatusUnauthorized), resp.Message)
					return
				}
				g.Expect(code).To(Equal(http.StatusAccepted), resp.Message)
				g.Expect(resp.Repositories).To(ConsistOf(want))
			}).WithTimeout(10 * time.Second).Should(Succeed())
			for _, r := range []*gyrev1alpha1.Repository{alpha, beta, missing, empty} {
				asked := false
				for _, w := range tc.want {
					asked = asked || w.Name == r.Name
				}
				if asked {
					g.Expect(requestedAt(g, r)).NotTo(Equal(before[r.Name]), "Repository %s asked to fetch", r.Name)
				} else {
					g.Expect(requestedAt(g, r)).To(Equal(before[r.Name]), "Repository %s left alone", r.Name)
				}
			}
		})
	}
}
