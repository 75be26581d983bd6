package exec

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/netguard"
)

// smtpTimeout bounds one e-mail delivery: a mail server that stops
// answering must not hold a reconcile worker for long.
const smtpTimeout = 30 * time.Second

// runSummary is the text of the Email and Slack notifications about a
// finished run. It depends on the run alone, so that two deliveries of the
// same run say the same.
func runSummary(run *cyclonev1alpha1.WorkflowRun) string {
	var b strings.Builder
	o := run.Status.Overall
	fmt.Fprintf(&b, "WorkflowRun %s/%s %s\n", run.Namespace, run.Name, phaseText(o.Phase))
	fmt.Fprintf(&b, "Workflow: %s\n", workflowName(run))
	if o.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", o.Reason)
	}
	if o.Message != "" {
		fmt.Fprintf(&b, "Message: %s\n", oneLine(o.Message))
	}
	if o.StartTime != nil && o.CompletionTime != nil {
		fmt.Fprintf(&b, "Duration: %s\n", o.CompletionTime.Sub(o.StartTime.Time).Round(time.Second))
	}
	names := make([]string, 0, len(run.Status.Stages))
	for name, s := range run.Status.Stages {
		if s != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		b.WriteString("Stages:\n")
	}
	for _, name := range names {
		fmt.Fprintf(&b, "- %s: %s\n", name, statusText(run.Status.Stages[name].Status))
	}
	return b.String()
}

// notificationSubject is the e-mail subject of a notification about run.
func notificationSubject(run *cyclonev1alpha1.WorkflowRun) string {
	return fmt.Sprintf("[gyre] WorkflowRun %s/%s %s", run.Namespace, run.Name, phaseText(run.Status.Overall.Phase))
}

// statusText is a stage's phase, followed by why when the status says.
func statusText(st cyclonev1alpha1.Status) string {
	s := phaseText(st.Phase)
	switch msg := oneLine(st.Message); {
	case st.Reason != "" && msg != "":
		return s + " (" + st.Reason + ": " + msg + ")"
	case st.Reason != "" || msg != "":
		return s + " (" + st.Reason + msg + ")"
	}
	return s
}

func phaseText(p cyclonev1alpha1.StatusPhase) string {
	if p == "" {
		return "not started"
	}
	return string(p)
}

// oneLine folds a multi-line message, such as a container's termination
// message, so that each stage keeps to one line of the summary.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// sendSlack posts the run's summary to Slack. An http(s) address is an
// incoming-webhook URL, which carries its own credential; any other
// address is a channel, posted to with the configured token.
func (r *Engine) sendSlack(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, addr string) error {
	// Slack reads "<", ">" and "&" as markup; a stage message may hold
	// them.
	text := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(runSummary(run))
	if u, err := url.Parse(addr); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		code, _, err := r.postJSON(ctx, addr, "", map[string]string{"text": text})
		if err != nil {
			return fmt.Errorf("slack webhook: %w", err)
		}
		if code/100 != 2 {
			return fmt.Errorf("slack webhook: %s", netguard.StatusReason(code))
		}
		return nil
	}
	if r.cfg.SlackToken == "" {
		return errors.New("posting to a Slack channel needs a bot token, and the controller has no --slack-token-file")
	}
	api := strings.TrimSuffix(r.cfg.SlackAPIURL, "/") + "/chat.postMessage"
	code, body, err := r.postJSON(ctx, api, r.cfg.SlackToken, map[string]string{"channel": addr, "text": text})
	if err != nil {
		return fmt.Errorf("slack chat.postMessage: %w", err)
	}
	if code/100 != 2 {
		return fmt.Errorf("slack chat.postMessage: %s", netguard.StatusReason(code))
	}
	var answer struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return errors.New("slack chat.postMessage: the answer is not Slack's JSON")
	}
	if !answer.OK {
		// Slack's error is a code such as "channel_not_found"; anything
		// else the answer holds stays out of the status.
		if !slackErrorCode.MatchString(answer.Error) {
			return errors.New("slack chat.postMessage failed")
		}
		return fmt.Errorf("slack chat.postMessage failed: %s", answer.Error)
	}
	return nil
}

// slackErrorCode matches the error codes of Slack's Web API.
var slackErrorCode = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// errBadAddress is the failure of a receiver address that is no URL. The
// address is not repeated: it may hold a credential.
var errBadAddress = errors.New("bad address: not an http(s) URL")

// postJSON POSTs v as JSON to target through the engine's outbound client,
// with token as a bearer token when set, and returns the answer's status
// code and the start of its body. Its errors are short reasons (see
// netguard.Reason) that leave the URL out: a Slack webhook URL is a
// credential, and a receiver's answer is not the status's to show.
func (r *Engine) postJSON(ctx context.Context, target, token string, v any) (code int, body []byte, err error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return 0, nil, fmt.Errorf("encode message: %w", err)
	}
	// Slack warns of a JSON body without a charset.
	return r.post(ctx, target, "application/json; charset=utf-8", token, payload)
}

// post POSTs a payload of type contentType; see postJSON.
func (r *Engine) post(ctx context.Context, target, contentType, token string, payload []byte) (code int, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return 0, nil, errBadAddress
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, errors.New(netguard.Reason(err))
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, nil, errors.New("reading the answer: " + netguard.Reason(err))
	}
	return resp.StatusCode, body, nil
}

// sendWebhook POSTs the run as JSON to addr, as Cyclone does. Only the
// answer's status code is kept: its body is the receiver's, not the
// tenant's to read in a status.
func (r *Engine) sendWebhook(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, addr string) error {
	body, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	code, _, err := r.post(ctx, addr, "application/json", "", body)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return errors.New(netguard.StatusReason(code))
	}
	return nil
}

// sendEmail mails the run's summary to addr through the configured SMTP
// server.
func (r *Engine) sendEmail(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, addr string) error {
	c := r.cfg.SMTP
	if c.Addr == "" {
		return errors.New("email needs an SMTP server, and the controller has no --smtp-addr")
	}
	if c.From == "" {
		return errors.New("email needs a sender address, and the controller has no --smtp-from")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return fmt.Errorf("bad sender address %q: %w", c.From, err)
	}
	to, err := mail.ParseAddress(addr)
	if err != nil {
		return fmt.Errorf("bad address: %w", err)
	}
	msg := mailMessage(from, to, notificationSubject(run), runSummary(run), r.cfg.Clock.Now())
	return r.smtpSend(ctx, from.Address, to.Address, msg)
}

// mailMessage is an RFC 5322 message with a plain-text body. The body is
// quoted-printable so that any stage message, however long its lines or
// whatever its characters, gets through any mail server.
func mailMessage(from, to *mail.Address, subject, body string, date time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(&b)
	_, _ = w.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	_ = w.Close()
	return b.Bytes()
}

// smtpSend delivers msg from one address to another, upgrading to TLS
// when the server offers STARTTLS and authenticating when a username is
// configured.
func (r *Engine) smtpSend(ctx context.Context, from, to string, msg []byte) error {
	c := r.cfg.SMTP
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("bad SMTP server address %q: %w", c.Addr, err)
	}
	dialer := net.Dialer{Timeout: smtpTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("connect to SMTP server: %w", err)
	}
	defer conn.Close()
	// Network deadlines follow the wall clock, whatever clock the engine
	// is given.
	deadline := time.Now().Add(smtpTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	// net/smtp knows no context: a cancelled one fails the pending I/O.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer cl.Close()
	if ok, _ := cl.Extension("STARTTLS"); ok {
		if err := cl.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return fmt.Errorf("smtp STARTTLS: %w", err)
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, host)); err != nil {
			return fmt.Errorf("smtp AUTH as %q: %w", c.Username, err)
		}
	}
	if err := cl.Mail(from); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := cl.Rcpt(to); err != nil {
		return fmt.Errorf("smtp RCPT TO: %w", err)
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	// The server has taken the message once DATA ends: a failed QUIT
	// loses nothing.
	_ = cl.Quit()
	return nil
}
