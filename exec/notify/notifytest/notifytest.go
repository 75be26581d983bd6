// Package notifytest provides the receivers that tests of gyre's
// notifications talk to: a real SMTP server, a Slack that answers as
// Slack's webhooks and Web API do, and plain webhook receivers, all on
// 127.0.0.1 and all keeping what they received.
package notifytest

import (
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The credentials the test SMTP server and the test Slack accept.
const (
	SMTPUser     = "gyre"
	SMTPPassword = "smtp-secret"
	SlackToken   = "xoxb-test-token"
)

// Inbox keeps what a test server received, for the test to read while
// the server goes on serving.
type Inbox[T any] struct {
	mu    sync.Mutex
	items []T
}

// Add keeps v.
func (in *Inbox[T]) Add(v T) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.items = append(in.items, v)
}

// All returns a copy of what was received so far, in arrival order.
func (in *Inbox[T]) All() []T {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]T(nil), in.items...)
}

// Mail is one message the test SMTP server accepted, as a reader of the
// mailbox would see it.
type Mail struct {
	User    string // who authenticated
	From    string
	To      []string // envelope recipients
	Header  mail.Header
	Subject string
	Body    string
}

// MailServer is a real SMTP server on 127.0.0.1 that keeps what it
// accepts.
type MailServer struct {
	Addr string
	Inbox[Mail]
}

// StartMailServer starts an SMTP server that asks for PLAIN auth with
// SMTPUser, rejects the recipient nobody@example.com, and stops with the
// test.
func StartMailServer(t testing.TB) *MailServer {
	t.Helper()
	ms := &MailServer{}
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
	server *MailServer
	msg    Mail
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != SMTPUser || pass != SMTPPassword {
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
	s.server.Add(msg)
	return nil
}

func (s *mailSession) Reset() { s.msg = Mail{User: s.msg.User} }

func (s *mailSession) Logout() error { return nil }

// SlackPost is one request the test Slack received.
type SlackPost struct {
	Path          string
	Authorization string
	Channel       string
	Text          string
}

// Slack answers as Slack's incoming webhooks (any path under /hooks/;
// /hooks/gone is a removed one) and Web API (/api/) do.
type Slack struct {
	*httptest.Server
	Inbox[SlackPost]
}

// StartSlack starts a Slack that accepts SlackToken and knows every
// channel but "#missing"; it stops with the test.
func StartSlack(t testing.TB) *Slack {
	t.Helper()
	s := &Slack{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct{ Channel, Text string }
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&msg) != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		s.Add(SlackPost{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Channel: msg.Channel, Text: msg.Text})
		switch {
		case r.URL.Path == "/hooks/gone":
			http.Error(w, "no_service", http.StatusNotFound)
		case strings.HasPrefix(r.URL.Path, "/hooks/"):
			_, _ = io.WriteString(w, "ok")
		case r.URL.Path != "/api/chat.postMessage":
			http.NotFound(w, r)
		case r.Header.Get("Authorization") != "Bearer "+SlackToken:
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

// Receiver is a webhook receiver on 127.0.0.1 that keeps the paths it
// was posted to.
type Receiver struct {
	*httptest.Server
	Inbox[string]
}

// StartReceiver starts a Receiver that answers with h; it stops with the
// test.
func StartReceiver(t testing.TB, h http.HandlerFunc) *Receiver {
	t.Helper()
	rcv := &Receiver{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rcv.Add(r.URL.Path)
		h(w, r)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}
