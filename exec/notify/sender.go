package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"k8s.io/utils/clock"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/netguard"
)

// DefaultSlackAPIURL is the base URL of Slack's Web API.
const DefaultSlackAPIURL = "https://slack.com/api/"

// Sender sends notifications and delegation requests. Its fields are the
// engine's configuration; see exec.Config for each.
type Sender struct {
	// HTTP sends webhook, Slack and delegation requests; it should be
	// netguard's outbound client.
	HTTP *http.Client
	// SMTP is the mail server of Email notifications.
	SMTP SMTPConfig
	// SlackToken posts to a Slack channel; SlackAPIURL is the base URL of
	// Slack's Web API, DefaultSlackAPIURL when empty.
	SlackToken  string
	SlackAPIURL string
	// Clock dates e-mails.
	Clock clock.PassiveClock
}

// Send delivers one notification about a finished run to addr, a
// receiver of type typ, and says how it went.
func (s *Sender) Send(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, typ cyclonev1alpha1.NotificationType, addr string) cyclonev1alpha1.NotificationStatus {
	var err error
	switch typ {
	case cyclonev1alpha1.NotificationTypeWebhook:
		err = s.sendWebhook(ctx, run, addr)
	case cyclonev1alpha1.NotificationTypeEmail:
		err = s.sendEmail(ctx, run, addr)
	case cyclonev1alpha1.NotificationTypeSlack:
		err = s.sendSlack(ctx, run, addr)
	default:
		err = fmt.Errorf("unknown receiver type %q", typ)
	}
	return Outcome(err)
}

// Outcome is the recorded outcome of a send that ended with err.
func Outcome(err error) cyclonev1alpha1.NotificationStatus {
	if err != nil {
		return cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultFailed, Message: err.Error()}
	}
	return cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}
}

// sendWebhook POSTs the run as JSON to addr, as Cyclone does. Only the
// answer's status code is kept: its body is the receiver's, not the
// tenant's to read in a status.
func (s *Sender) sendWebhook(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, addr string) error {
	body, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	code, _, err := s.post(ctx, addr, "application/json", "", body)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return errors.New(netguard.StatusReason(code))
	}
	return nil
}

// errBadAddress is the failure of a receiver address that is no URL. The
// address is not repeated: it may hold a credential.
var errBadAddress = errors.New("bad address: not an http(s) URL")

// postJSON POSTs v as JSON to target, with token as a bearer token when
// set, and returns the answer's status code and the start of its body.
// Its errors are short reasons (see netguard.Reason) that leave the URL
// out.
func (s *Sender) postJSON(ctx context.Context, target, token string, v any) (code int, body []byte, err error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return 0, nil, fmt.Errorf("encode message: %w", err)
	}
	// Slack warns of a JSON body without a charset.
	return s.post(ctx, target, "application/json; charset=utf-8", token, payload)
}

// post POSTs a payload of type contentType; see postJSON.
func (s *Sender) post(ctx context.Context, target, contentType, token string, payload []byte) (code int, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return 0, nil, errBadAddress
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.HTTP.Do(req)
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
