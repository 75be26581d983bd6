package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/netguard"
)

// sendSlack posts the run's summary to Slack. An http(s) address is an
// incoming-webhook URL, which carries its own credential; any other
// address is a channel, posted to with the configured token.
func (s *Sender) sendSlack(ctx context.Context, run *cyclonev1alpha1.WorkflowRun, addr string) error {
	// Slack reads "<", ">" and "&" as markup; a stage message may hold
	// them.
	text := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(Summary(run))
	if u, err := url.Parse(addr); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		code, _, err := s.postJSON(ctx, addr, "", map[string]string{"text": text})
		if err != nil {
			return fmt.Errorf("slack webhook: %w", err)
		}
		if code/100 != 2 {
			return fmt.Errorf("slack webhook: %s", netguard.StatusReason(code))
		}
		return nil
	}
	if s.SlackToken == "" {
		return errors.New("posting to a Slack channel needs a bot token, and the controller has no --slack-token-file")
	}
	base := s.SlackAPIURL
	if base == "" {
		base = DefaultSlackAPIURL
	}
	api := strings.TrimSuffix(base, "/") + "/chat.postMessage"
	code, body, err := s.postJSON(ctx, api, s.SlackToken, map[string]string{"channel": addr, "text": text})
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
