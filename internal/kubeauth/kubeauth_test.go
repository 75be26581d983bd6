package kubeauth

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestToken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"A bearer token in Authorization is the token.", map[string]string{"Authorization": "Bearer abc"}, "abc"},
		{"The scheme is case-insensitive.", map[string]string{"Authorization": "bearer abc"}, "abc"},
		{"X-Gyre-Token, which passes the API server's proxy, wins.", map[string]string{"Authorization": "Bearer abc", TokenHeader: "def"}, "def"},
		{"Basic credentials are no token.", map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, ""},
		{"No header, no token.", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			g.Expect(Token(r)).To(Equal(tc.want))
		})
	}
}

// TestCache counts the reviews the API server gets. A fake clientset
// answers them: what is tested is when the cache asks, not the API
// server's answer (the web view's and runlogs' tests use a real one).
func TestCache(t *testing.T) {
	g := NewWithT(t)
	cs := fake.NewClientset()
	tokenReviews, accessReviews := 0, 0
	allowed := true
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tokenReviews++
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: tr.Spec.Token != "bad", User: authenticationv1.UserInfo{Username: "u-" + tr.Spec.Token}}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		accessReviews++
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = allowed
		return true, sar, nil
	})
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	c := &Cache{Reviewer: Reviewer{Client: cs}, TTL: 10 * time.Second, Clock: clock}
	ctx := context.Background()
	runs := func(ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: "get", Group: "cyclone.dev", Resource: "workflowruns", Namespace: ns}
	}

	user, err := c.Authenticate(ctx, "a")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(user.Username).To(Equal("u-a"))
	_, _ = c.Authenticate(ctx, "a")
	g.Expect(tokenReviews).To(Equal(1), "a token is reviewed once within the TTL")
	bad, err := c.Authenticate(ctx, "bad")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bad).To(BeNil(), "a token the API server refuses has no user")
	g.Expect(tokenReviews).To(Equal(2), "another token is reviewed on its own")

	for range 3 {
		ok, err := c.Allowed(ctx, "a", user, runs("cyclone-shop"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue())
	}
	g.Expect(accessReviews).To(Equal(1), "a right is reviewed once within the TTL")
	_, _ = c.Allowed(ctx, "a", user, runs("cyclone-payments"))
	_, _ = c.Allowed(ctx, "b", &authenticationv1.UserInfo{Username: "u-b"}, runs("cyclone-shop"))
	g.Expect(accessReviews).To(Equal(3), "another namespace, or another token, is reviewed on its own")

	allowed = false
	clock.SetTime(clock.Now().Add(11 * time.Second))
	ok, err := c.Allowed(ctx, "a", user, runs("cyclone-shop"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse(), "a revoked right is honoured once the TTL has passed")
	_, _ = c.Authenticate(ctx, "a")
	g.Expect(tokenReviews).To(Equal(3), "and a token is reviewed again")
}
