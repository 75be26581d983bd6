package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
)

// SMTPConfig says how to reach the mail server that sends Email
// notifications.
type SMTPConfig struct {
	// Addr is the server's host:port; empty turns Email notifications
	// off. The connection is upgraded with STARTTLS when the server
	// offers it.
	Addr string
	// From is the sender address of every notification.
	From string
	// Username and Password authenticate with PLAIN when Username is set.
	// net/smtp sends them only over TLS, or to a server on localhost.
	Username, Password string
}

// smtpTimeout bounds one e-mail delivery: a mail server that stops
// answering must not hold a send slot for long.
const smtpTimeout = 30 * time.Second

// sendEmail mails the run's summary to addr through the configured SMTP
// server.
func (s *Sender) sendEmail(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, addr string) error {
	c := s.SMTP
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
	msg := mailMessage(from, to, subject(run), Summary(run), s.Clock.Now())
	return s.smtpSend(ctx, from.Address, to.Address, msg)
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
func (s *Sender) smtpSend(ctx context.Context, from, to string, msg []byte) error {
	c := s.SMTP
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
