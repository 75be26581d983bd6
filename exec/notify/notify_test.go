package notify

import (
	"bytes"
	"context"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/notify/notifytest"
	"github.com/gyreops/gyre/internal/netguard"
)

var bg = context.Background()

// sender is a Sender as the engine makes one, whose requests may reach
// 127.0.0.1, where the test servers listen, only when allowLoopback is
// set, as --allow-outbound=127.0.0.0/8 would.
func sender(t testing.TB, allowLoopback bool) *Sender {
	var policy netguard.Policy
	if allowLoopback {
		policy.Allow = []string{"127.0.0.0/8"}
	}
	guard, err := netguard.New(policy)
	if err != nil {
		t.Fatal(err)
	}
	return &Sender{HTTP: guard.Client(10 * time.Second), Clock: clock.RealClock{}}
}

// configured is a Sender pointed at the test mail server and Slack.
func configured(t testing.TB, ms *notifytest.MailServer, slack *notifytest.Slack) *Sender {
	s := sender(t, true)
	s.SMTP = SMTPConfig{Addr: ms.Addr, From: "gyre <gyre@example.com>", Username: notifytest.SMTPUser, Password: notifytest.SMTPPassword}
	s.SlackToken = notifytest.SlackToken
	s.SlackAPIURL = slack.URL + "/api/"
	return s
}

// failedRun is a finished run of Workflow "wf" with one failed and one
// succeeded stage.
func failedRun() *cyclonev1alpha1.WorkflowRun {
	start := metav1.NewTime(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC))
	end := metav1.NewTime(start.Add(75*time.Second + 400*time.Millisecond))
	return &cyclonev1alpha1.WorkflowRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: "cyclone-acme", Name: "run1"},
		Spec:       cyclonev1alpha1.WorkflowRunSpec{WorkflowRef: &corev1.ObjectReference{Name: "wf"}},
		Status: cyclonev1alpha1.WorkflowRunStatus{
			Overall: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusFailed, Reason: "StageFailed",
				Message: "stage test failed", StartTime: &start, CompletionTime: &end},
			Stages: map[string]*cyclonev1alpha1.StageStatus{
				"test":  {Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusFailed, Reason: "Error", Message: "container main exited with code 3:\nFAIL pkg/x <flaky>"}},
				"build": {Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusSucceeded, Reason: "Completed"}},
				"lint":  {Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusCancelled, Message: "run cancelled"}},
			},
		},
	}
}

const failedRunSummary = `WorkflowRun cyclone-acme/run1 Failed
Workflow: wf
Reason: StageFailed
Message: stage test failed
Duration: 1m15s
Stages:
- build: Succeeded (Completed)
- lint: Cancelled (run cancelled)
- test: Failed (Error: container main exited with code 3: FAIL pkg/x <flaky>)
`

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		run  func() *cyclonev1alpha1.WorkflowRun
		want string
	}{
		{name: "A finished run gives its outcome, duration and one line per stage in name order.",
			run: failedRun, want: failedRunSummary},
		{name: "A run without times or stages leaves those lines out.",
			run: func() *cyclonev1alpha1.WorkflowRun {
				r := failedRun()
				r.Status = cyclonev1alpha1.WorkflowRunStatus{Overall: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusSucceeded}}
				return r
			},
			want: "WorkflowRun cyclone-acme/run1 Succeeded\nWorkflow: wf\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Summary(tt.run())).To(Equal(tt.want))
			g.Expect(Summary(tt.run())).To(Equal(Summary(tt.run())))
		})
	}
}

func TestSender_email(t *testing.T) {
	ms := notifytest.StartMailServer(t)
	slack := notifytest.StartSlack(t)
	t.Run("The mail reaches the receiver with the run in its subject and the stages in its body.", func(t *testing.T) {
		g := NewWithT(t)
		st := configured(t, ms, slack).Send(bg, failedRun(), cyclonev1alpha1.NotificationTypeEmail, "Ops <ops@example.com>")
		g.Expect(st).To(Equal(cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}))
		msgs := ms.All()
		g.Expect(msgs).To(HaveLen(1))
		m := msgs[0]
		g.Expect(m.User).To(Equal(notifytest.SMTPUser))
		g.Expect(m.From).To(Equal("gyre@example.com"))
		g.Expect(m.To).To(Equal([]string{"ops@example.com"}))
		g.Expect(m.Header.Get("To")).To(Equal(`"Ops" <ops@example.com>`))
		g.Expect(m.Header.Get("From")).To(Equal(`"gyre" <gyre@example.com>`))
		g.Expect(m.Subject).To(Equal("[gyre] WorkflowRun cyclone-acme/run1 Failed"))
		g.Expect(m.Body).To(Equal(failedRunSummary))
	})
	tests := []struct {
		name    string
		mutate  func(s *Sender)
		addr    string
		wantMsg string
	}{
		{name: "Without an SMTP server the receiver fails, naming the flag to set.",
			mutate: func(s *Sender) { s.SMTP = SMTPConfig{} },
			addr:   "ops@example.com", wantMsg: "email needs an SMTP server, and the controller has no --smtp-addr"},
		{name: "Without a sender address the receiver fails, naming the flag to set.",
			mutate: func(s *Sender) { s.SMTP.From = "" },
			addr:   "ops@example.com", wantMsg: "email needs a sender address, and the controller has no --smtp-from"},
		{name: "A recipient the server refuses fails with the server's answer.",
			mutate: func(*Sender) {},
			addr:   "nobody@example.com", wantMsg: `smtp RCPT TO: 550 "5.1.1 no such user"`},
		{name: "Wrong credentials fail without showing the password.",
			mutate: func(s *Sender) { s.SMTP.Password = "wrong-secret" },
			addr:   "ops@example.com", wantMsg: `smtp AUTH as "gyre": 535 "5.7.8 Authentication failed"`},
		{name: "An address that is not one fails before anything is sent.",
			mutate: func(*Sender) {},
			addr:   "#ci", wantMsg: "bad address: mail: missing '@' or angle-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			before := len(ms.All())
			s := configured(t, ms, slack)
			tt.mutate(s)
			st := s.Send(bg, failedRun(), cyclonev1alpha1.NotificationTypeEmail, tt.addr)
			g.Expect(st).To(Equal(cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultFailed, Message: tt.wantMsg}))
			g.Expect(ms.All()).To(HaveLen(before))
		})
	}
}

func TestSender_slack(t *testing.T) {
	ms := notifytest.StartMailServer(t)
	slack := notifytest.StartSlack(t)
	// Slack reads <, > and & as markup.
	wantText := strings.ReplaceAll(strings.ReplaceAll(failedRunSummary, "<", "&lt;"), ">", "&gt;")
	tests := []struct {
		name     string
		noToken  bool
		addr     string
		wantPost *notifytest.SlackPost // nil: nothing reaches Slack
		wantMsg  string                // empty: succeeded
	}{
		{name: "An incoming-webhook URL gets the summary, without the bot token.",
			addr:     slack.URL + "/hooks/T0/B0/secret",
			wantPost: &notifytest.SlackPost{Path: "/hooks/T0/B0/secret", Text: wantText}},
		{name: "A webhook that answers with an error status fails with that status.",
			addr:     slack.URL + "/hooks/gone",
			wantPost: &notifytest.SlackPost{Path: "/hooks/gone", Text: wantText},
			wantMsg:  "slack webhook: HTTP 404"},
		{name: "A channel gets the summary through chat.postMessage with the bot token.",
			addr:     "#ci",
			wantPost: &notifytest.SlackPost{Path: "/api/chat.postMessage", Authorization: "Bearer " + notifytest.SlackToken, Channel: "#ci", Text: wantText}},
		{name: "A channel Slack does not know fails with Slack's error.",
			addr:     "#missing",
			wantPost: &notifytest.SlackPost{Path: "/api/chat.postMessage", Authorization: "Bearer " + notifytest.SlackToken, Channel: "#missing", Text: wantText},
			wantMsg:  "slack chat.postMessage failed: channel_not_found"},
		{name: "A channel without a bot token fails, naming the flag to set.",
			noToken: true, addr: "C0123",
			wantMsg: "posting to a Slack channel needs a bot token, and the controller has no --slack-token-file"},
		{name: "An unreachable webhook fails without showing its URL.",
			addr:    "http://127.0.0.1:1/hooks/T0/B0/secret",
			wantMsg: "slack webhook: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := configured(t, ms, slack)
			if tt.noToken {
				s.SlackToken = ""
			}
			before := len(slack.All())
			st := s.Send(bg, failedRun(), cyclonev1alpha1.NotificationTypeSlack, tt.addr)
			want := cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}
			if tt.wantMsg != "" {
				want = cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultFailed, Message: tt.wantMsg}
			}
			g.Expect(st).To(Equal(want))
			posts := slack.All()[before:]
			if tt.wantPost == nil {
				g.Expect(posts).To(BeEmpty())
				return
			}
			g.Expect(posts).To(Equal([]notifytest.SlackPost{*tt.wantPost}))
		})
	}
}

func TestSender_webhook(t *testing.T) {
	elsewhere := notifytest.StartReceiver(t, func(http.ResponseWriter, *http.Request) {})
	rcv := notifytest.StartReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, elsewhere.URL+"/stolen", http.StatusTemporaryRedirect)
		case "/broken":
			http.Error(w, "stack trace with db-password=hunter2", http.StatusInternalServerError)
		}
	})
	tests := []struct {
		name     string
		allow    bool   // the outbound policy lists 127.0.0.0/8
		path     string // posted to on rcv
		wantMsg  string // empty: succeeded
		wantCall bool   // rcv gets the request
	}{
		{name: "A receiver on loopback is refused before it is connected to, and the status says why.",
			path: "/hook", wantMsg: "refused: 127.0.0.1 is a loopback address"},
		{name: "A receiver on loopback is posted to once the policy allows it.",
			allow: true, path: "/hook", wantCall: true},
		{name: "A redirect is not followed, and the status names it.",
			allow: true, path: "/moved", wantMsg: "HTTP 307 redirect not followed", wantCall: true},
		{name: "A receiver's error answer is recorded by its status code, never its body.",
			allow: true, path: "/broken", wantMsg: "HTTP 500", wantCall: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			before := len(rcv.All())
			st := sender(t, tt.allow).Send(bg, failedRun(), cyclonev1alpha1.NotificationTypeWebhook, rcv.URL+tt.path)
			want := cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}
			if tt.wantMsg != "" {
				want = cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultFailed, Message: tt.wantMsg}
			}
			g.Expect(st).To(Equal(want))
			if tt.wantCall {
				g.Expect(rcv.All()[before:]).To(Equal([]string{tt.path}))
			} else {
				g.Expect(rcv.All()[before:]).To(BeEmpty(), "the receiver is never called")
			}
			g.Expect(elsewhere.All()).To(BeEmpty(), "no redirect is followed")
		})
	}
}

// TestMailMessage checks what mail clients rely on: headers a reader can
// decode, and a body that survives lines past SMTP's limit.
func TestMailMessage(t *testing.T) {
	g := NewWithT(t)
	long := strings.Repeat("x", 2000)
	from := &mail.Address{Name: "gyre", Address: "gyre@example.com"}
	to := &mail.Address{Address: "ops@example.com"}
	raw := mailMessage(from, to, "[gyre] WorkflowRun ns/r Succeeded", "é "+long+"\n", time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC))
	for _, line := range bytes.Split(raw, []byte("\r\n")) {
		g.Expect(len(line)).To(BeNumerically("<=", 78))
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m.Header.Get("Date")).To(Equal("Tue, 04 Mar 2025 10:00:00 +0000"))
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(body)).To(Equal("é " + long + "\r\n"))
}

func TestDelegation(t *testing.T) {
	g := NewWithT(t)
	g.Expect(DelegationURL("approvals.example:8080/approve")).To(Equal("http://approvals.example:8080/approve"), "Cyclone takes a bare address as http")
	g.Expect(DelegationURL("https://approvals.example/approve")).To(Equal("https://approvals.example/approve"))

	svc := notifytest.StartReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			http.Error(w, "try later, token=abc", http.StatusServiceUnavailable)
		}
	})
	g.Expect(sender(t, false).Delegate(bg, svc.URL+"/approve", []byte("{}"))).To(MatchError("delegation request: refused: 127.0.0.1 is a loopback address"))
	g.Expect(svc.All()).To(BeEmpty(), "the service is never called")
	g.Expect(sender(t, true).Delegate(bg, svc.URL+"/approve", []byte("{}"))).To(Succeed())
	g.Expect(sender(t, true).Delegate(bg, svc.URL+"/busy", []byte("{}"))).To(MatchError("delegation request: HTTP 503"), "the answer's body stays out")
	g.Expect(svc.All()).To(Equal([]string{"/approve", "/busy"}))
}
