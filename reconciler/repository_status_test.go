package reconciler

import (
	"errors"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gyreops/gyre/source"
)

func TestRepositoryConditions(t *testing.T) {
	fetchFailed := &source.Error{Reason: source.FetchFailed, URL: "https://h/r.git", Err: errors.New("connection refused")}
	invalidURL := &source.Error{Reason: source.InvalidURL, URL: "ftp://h/r", Err: errors.New(`scheme "ftp" is not supported`)}
	tests := []struct {
		name            string
		outcome         repositoryOutcome
		wantReady       metav1.ConditionStatus
		wantReason      string
		wantMessage     string
		wantReconciling bool
		wantStalled     bool
	}{
		{"Success is Ready with the revision and nothing else.",
			repositoryOutcome{revision: "main@sha1:abc"},
			metav1.ConditionTrue, ReasonArtifactStored, "stored artifact for revision main@sha1:abc", false, false},
		{"A remote failure is retried and says which artifact is still served.",
			repositoryOutcome{revision: "main@sha1:abc", err: fetchFailed},
			metav1.ConditionFalse, "FetchFailed", "https://h/r.git: connection refused; serving the last artifact, main@sha1:abc", true, false},
		{"A failure before any artifact says only the failure.",
			repositoryOutcome{err: fetchFailed},
			metav1.ConditionFalse, "FetchFailed", "https://h/r.git: connection refused", true, false},
		{"A bad spec stalls instead of retrying.",
			repositoryOutcome{err: invalidURL, terminal: true},
			metav1.ConditionFalse, "InvalidURL", `ftp://h/r: scheme "ftp" is not supported`, false, true},
		{"A missing Secret has its own reason.",
			repositoryOutcome{err: &reasonedError{reason: ReasonSecretNotFound, err: errors.New("secret ns/s not found")}},
			metav1.ConditionFalse, ReasonSecretNotFound, "secret ns/s not found", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ready, reconciling, stalled := repositoryConditions(tt.outcome, 7)
			g.Expect(ready.Type).To(Equal(meta.ReadyCondition))
			g.Expect(ready.Status).To(Equal(tt.wantReady))
			g.Expect(ready.Reason).To(Equal(tt.wantReason))
			g.Expect(ready.Message).To(Equal(tt.wantMessage))
			g.Expect(ready.ObservedGeneration).To(BeEquivalentTo(7))
			g.Expect(reconciling != nil).To(Equal(tt.wantReconciling))
			g.Expect(stalled != nil).To(Equal(tt.wantStalled))
		})
	}
}

func TestRepositoryEvent(t *testing.T) {
	failing := &metav1.Condition{Type: meta.ReadyCondition, Status: metav1.ConditionFalse, Reason: "FetchFailed"}
	ready := &metav1.Condition{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: ReasonArtifactStored}
	fetchFailed := &source.Error{Reason: source.FetchFailed, Err: errors.New("refused")}
	authFailed := &source.Error{Reason: source.AuthenticationFailed, Err: errors.New("denied")}
	tests := []struct {
		name           string
		before         *metav1.Condition
		beforeRevision string
		outcome        repositoryOutcome
		wantType       string
		wantReason     string
	}{
		{"The first artifact is an event.", nil, "", repositoryOutcome{revision: "main@sha1:a"}, corev1.EventTypeNormal, ReasonNewArtifact},
		{"A new revision is an event.", ready, "main@sha1:a", repositoryOutcome{revision: "main@sha1:b"}, corev1.EventTypeNormal, ReasonNewArtifact},
		{"An unchanged poll is silent.", ready, "main@sha1:a", repositoryOutcome{revision: "main@sha1:a"}, "", ""},
		{"A failure that starts is a warning.", ready, "main@sha1:a", repositoryOutcome{revision: "main@sha1:a", err: fetchFailed}, corev1.EventTypeWarning, "FetchFailed"},
		{"The same failure again is silent.", failing, "main@sha1:a", repositoryOutcome{revision: "main@sha1:a", err: fetchFailed}, "", ""},
		{"A failure with a new reason is a warning.", failing, "main@sha1:a", repositoryOutcome{revision: "main@sha1:a", err: authFailed}, corev1.EventTypeWarning, "AuthenticationFailed"},
		{"A recovery on the same revision is an event.", failing, "main@sha1:a", repositoryOutcome{revision: "main@sha1:a"}, corev1.EventTypeNormal, ReasonArtifactStored},
		{"A recovery onto a new revision is one event.", failing, "main@sha1:a", repositoryOutcome{revision: "main@sha1:b"}, corev1.EventTypeNormal, ReasonNewArtifact},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			typ, reason, _, ok := repositoryEvent(tt.before, tt.beforeRevision, tt.outcome)
			g.Expect(ok).To(Equal(tt.wantType != ""))
			g.Expect(typ).To(Equal(tt.wantType))
			g.Expect(reason).To(Equal(tt.wantReason))
		})
	}
}
