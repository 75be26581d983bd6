package exec

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/netguard"
)

// The credentials the test SMTP server and the test Slack accept.
const (
	testSMTPUser   = "gyre"
	testSMTPPass   = "smtp-secret"
	testSlackToken = "xoxb-test-token"
)

// delivered is one message the test SMTP server accepted, as a reader of
// the mailbox would see it.
type delivered struct {
	User    string // who authenticated
	From    string
	To      []string // envelope recipients
	Header  mail.Header
	Subject string
	Body    string
}

// mailServer is a real SMTP server on 127.0.0.1 that keeps what it
// accepts.
type mailServer struct {
	Addr string
	inbox[delivered]
}

// startMailServer starts an SMTP server that asks for PLAIN auth with
// testSMTPUser, rejects the recipient nobody@example.com, and stops with
// the test.
func startMailServer(t testing.TB) *mailServer {
	t.Helper()
	ms := &mailServer{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &mailSession{server: ms}, nil
	}))
	s.Domain = "localhost"
	// No TLS here: net/smtp sends PLAIN credentials in the clear only to
	// a server on localhost, which this one is.
	s.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.Addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return ms
}

type mailSession struct {
	server *mailServer
	msg    delivered
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != testSMTPUser || pass != testSMTPPass {
			return smtp.ErrAuthFailed
		}
		s.msg.User = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.msg.From = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == "nobody@example.com" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		return err
	}
	msg := s.msg
	msg.Header = m.Header
	msg.Subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	msg.Body = strings.ReplaceAll(string(body), "\r\n", "\n")
	s.server.add(msg)
	return nil
}

func (s *mailSession) Reset() { s.msg = delivered{User: s.msg.User} }

func (s *mailSession) Logout() error { return nil }

// slackPost is one request the test Slack received.
type slackPost struct {
	Path          string
	Authorization string
	Channel       string
	Text          string
}

// fakeSlack answers as Slack's incoming webhooks (any path under
// /hooks/; /hooks/gone is a removed one) and Web API (/api/) do.
type fakeSlack struct {
	*httptest.Server
	inbox[slackPost]
}

func startSlack(t testing.TB) *fakeSlack {
	t.Helper()
	s := &fakeSlack{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct{ Channel, Text string }
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&msg) != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		s.add(slackPost{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Channel: msg.Channel, Text: msg.Text})
		switch {
		case r.URL.Path == "/hooks/gone":
			http.Error(w, "no_service", http.StatusNotFound)
		case strings.HasPrefix(r.URL.Path, "/hooks/"):
			_, _ = io.WriteString(w, "ok")
		case r.URL.Path != "/api/chat.postMessage":
			http.NotFound(w, r)
		case r.Header.Get("Authorization") != "Bearer "+testSlackToken:
			_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
		case msg.Channel == "#missing":
			_, _ = io.WriteString(w, `{"ok":false,"error":"channel_not_found"}`)
		default:
			_, _ = io.WriteString(w, `{"ok":true,"channel":"C0123","ts":"1.2"}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// notifyConfig points an engine's notifications at the test mail server
// and Slack.
func notifyConfig(cfg Config, ms *mailServer, slack *fakeSlack) Config {
	cfg.SMTP = SMTPConfig{Addr: ms.Addr, From: "gyre <gyre@example.com>", Username: testSMTPUser, Password: testSMTPPass}
	cfg.SlackToken = testSlackToken
	cfg.SlackAPIURL = slack.URL + "/api/"
	return allowLoopback(cfg)
}

// allowLoopback lets an engine's outbound requests reach the test servers,
// which listen on 127.0.0.1, as --allow-outbound=127.0.0.0/8 would.
func allowLoopback(cfg Config) Config {
	guard, err := netguard.New(netguard.Policy{Allow: []string{"127.0.0.0/8"}})
	if err != nil {
		panic(err)
	}
	cfg.Outbound = guard
	return cfg
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
			Overall: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonStageFailed,
				Message: "stage test failed", StartTime: &start, CompletionTime: &end},
			Stages: map[string]*cyclonev1alpha1.StageStatus{
				"test":  {Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusFailed, Reason: ReasonError, Message: "container main exited with code 3:\nFAIL pkg/x <flaky>"}},
				"build": {Status: cyclonev1alpha1.Status{Phase: cyclonev1alpha1.StatusSucceeded, Reason: ReasonCompleted}},
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

func TestRunSummary(t *testing.T) {
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
			g.Expect(runSummary(tt.run())).To(Equal(tt.want))
			g.Expect(runSummary(tt.run())).To(Equal(runSummary(tt.run())))
		})
	}
}

func TestEngine_sendEmail(t *testing.T) {
	ms := startMailServer(t)
	slack := startSlack(t)
	configured := notifyConfig(Config{}, ms, slack)
	t.Run("The mail reaches the receiver with the run in its subject and the stages in its body.", func(t *testing.T) {
		g := NewWithT(t)
		e := &Engine{cfg: configured.withDefaults()}
		st := e.send(bg, failedRun(), cyclonev1alpha1.NotificationTypeEmail, "Ops <ops@example.com>")
		g.Expect(st).To(Equal(cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}))
		msgs := ms.all()
		g.Expect(msgs).To(HaveLen(1))
		m := msgs[0]
		g.Expect(m.User).To(Equal(testSMTPUser))
		g.Expect(m.From).To(Equal("gyre@example.com"))
		g.Expect(m.To).To(Equal([]string{"ops@example.com"}))
		g.Expect(m.Header.Get("To")).To(Equal(`"Ops" <ops@example.com>`))
		g.Expect(m.Header.Get("From")).To(Equal(`"gyre" <gyre@example.com>`))
		g.Expect(m.Subject).To(Equal("[gyre] WorkflowRun cyclone-acme/run1 Failed"))
		g.Expect(m.Body).To(Equal(failedRunSummary))
	})
	tests := []struct {
		name    string
		cfg     func(c Config) Config
		addr    string
		wantMsg string
	}{
		{name: "Without an SMTP server the receiver fails, naming the flag to set.",
			cfg:  func(c Config) Config { c.SMTP = SMTPConfig{}; return c },
			addr: "ops@example.com", wantMsg: "email needs an SMTP server, and the controller has no --smtp-addr"},
		{name: "Without a sender address the receiver fails, naming the flag to set.",
			cfg:  func(c Config) Config { c.SMTP.From = ""; return c },
			addr: "ops@example.com", wantMsg: "email needs a sender address, and the controller has no --smtp-from"},
		{name: "A recipient the server refuses fails with the server's answer.",
			cfg:  func(c Config) Config { return c },
			addr: "nobody@example.com", wantMsg: `smtp RCPT TO: 550 "5.1.1 no such user"`},
		{name: "Wrong credentials fail without showing the password.",
			cfg:  func(c Config) Config { c.SMTP.Password = "wrong-secret"; return c },
			addr: "ops@example.com", wantMsg: `smtp AUTH as "gyre": 535 "5.7.8 Authentication failed"`},
		{name: "An address that is not one fails before anything is sent.",
			cfg:  func(c Config) Config { return c },
			addr: "#ci", wantMsg: "bad address: mail: missing '@' or angle-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			before := len(ms.all())
			e := &Engine{cfg: tt.cfg(configured).withDefaults()}
			st := e.send(bg, failedRun(), cyclonev1alpha1.NotificationTypeEmail, tt.addr)
			g.Expect(st).To(Equal(cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultFailed, Message: tt.wantMsg}))
			g.Expect(ms.all()).To(HaveLen(before))
		})
	}
}

func TestEngine_sendSlack(t *testing.T) {
	ms := startMailServer(t)
	slack := startSlack(t)
	configured := notifyConfig(Config{}, ms, slack)
	// Slack reads <, > and & as markup.
	wantText := strings.ReplaceAll(strings.ReplaceAll(failedRunSummary, "<", "&lt;"), ">", "&gt;")
	tests := []struct {
		name     string
		noToken  bool
		addr     string
		wantPost *slackPost // nil: nothing reaches Slack
		wantMsg  string     // empty: succeeded
	}{
		{name: "An incoming-webhook URL gets the summary, without the bot token.",
			addr:     slack.URL + "/hooks/T0/B0/secret",
			wantPost: &slackPost{Path: "/hooks/T0/B0/secret", Text: wantText}},
		{name: "A webhook that answers with an error status fails with that status.",
			addr:     slack.URL + "/hooks/gone",
			wantPost: &slackPost{Path: "/hooks/gone", Text: wantText},
			wantMsg:  "slack webhook: HTTP 404"},
		{name: "A channel gets the summary through chat.postMessage with the bot token.",
			addr:     "#ci",
			wantPost: &slackPost{Path: "/api/chat.postMessage", Authorization: "Bearer " + testSlackToken, Channel: "#ci", Text: wantText}},
		{name: "A channel Slack does not know fails with Slack's error.",
			addr:     "#missing",
			wantPost: &slackPost{Path: "/api/chat.postMessage", Authorization: "Bearer " + testSlackToken, Channel: "#missing", Text: wantText},
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
			cfg := configured
			if tt.noToken {
				cfg.SlackToken = ""
			}
			before := len(slack.all())
			e := &Engine{cfg: cfg.withDefaults()}
			st := e.send(bg, failedRun(), cyclonev1alpha1.NotificationTypeSlack, tt.addr)
			want := cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}
			if tt.wantMsg != "" {
				want = cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultFailed, Message: tt.wantMsg}
			}
			g.Expect(st).To(Equal(want))
			posts := slack.all()[before:]
			if tt.wantPost == nil {
				g.Expect(posts).To(BeEmpty())
				return
			}
			g.Expect(posts).To(Equal([]slackPost{*tt.wantPost}))
		})
	}
}

// receiver is a webhook receiver on 127.0.0.1 that answers with code and
// body and keeps the paths it was posted to.
type receiver struct {
	*httptest.Server
	inbox[string]
}

func startReceiver(t testing.TB, h http.HandlerFunc) *receiver {
	t.Helper()
	rcv := &receiver{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rcv.add(r.URL.Path)
		h(w, r)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}

func TestEngine_sendWebhook(t *testing.T) {
	elsewhere := startReceiver(t, func(http.ResponseWriter, *http.Request) {})
	rcv := startReceiver(t, func(w http.ResponseWriter, r *http.Request) {
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
			cfg := Config{}
			if tt.allow {
				cfg = allowLoopback(cfg)
			}
			e := &Engine{cfg: cfg.withDefaults()}
			before := len(rcv.all())
			st := e.send(bg, failedRun(), cyclonev1alpha1.NotificationTypeWebhook, rcv.URL+tt.path)
			want := cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}
			if tt.wantMsg != "" {
				want = cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultFailed, Message: tt.wantMsg}
			}
			g.Expect(st).To(Equal(want))
			if tt.wantCall {
				g.Expect(rcv.all()[before:]).To(Equal([]string{tt.path}))
			} else {
				g.Expect(rcv.all()[before:]).To(BeEmpty(), "the receiver is never called")
			}
			g.Expect(elsewhere.all()).To(BeEmpty(), "no redirect is followed")
		})
	}
}

// TestEngine_notificationToLoopbackIsRefused: a Workflow whose webhook
// points at an address on the controller's own host gets no request sent
// there; the run's status says why, in a few words.
func TestEngine_notificationToLoopbackIsRefused(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	rcv := startReceiver(t, func(http.ResponseWriter, *http.Request) {})
	ns := newTenant(t)
	startEngine(t, env.Config, testConfig())
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"),
		func(wf *cyclonev1alpha1.Workflow) {
			wf.Spec.Notification = cyclonev1alpha1.Notification{Receivers: []cyclonev1alpha1.NotificationReceiver{
				{Type: cyclonev1alpha1.NotificationTypeWebhook, Addresses: []string{rcv.URL + "/hook"}},
			}}
		})
	createRun(t, ns, "run1", "wf")

	g.Eventually(func(g Gomega) {
		run := getRun(g, ns, "run1")
		g.Expect(run.Status.Notifications).To(Equal(map[string]cyclonev1alpha1.NotificationStatus{
			"Webhook:" + rcv.URL + "/hook": {Result: cyclonev1alpha1.NotificationResultFailed, Message: "refused: 127.0.0.1 is a loopback address"},
		}))
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Expect(rcv.all()).To(BeEmpty(), "the receiver is never called")
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
