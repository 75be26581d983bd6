package exec

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/exec/notify"
	"github.com/gyreops/gyre/exec/notify/notifytest"
	"github.com/gyreops/gyre/internal/netguard"
)

func TestEngine_notifications(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	var mu sync.Mutex
	var got []cyclonev1alpha1.WorkflowRun
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var run cyclonev1alpha1.WorkflowRun
		if r.Method != http.MethodPost || json.Unmarshal(body, &run) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, run)
		mu.Unlock()
	}))
	defer srv.Close()
	ms := notifytest.StartMailServer(t)
	slack := notifytest.StartSlack(t)
	ns := newTenant(t)
	startEngine(t, env.Config, notifyConfig(testConfig(), ms, slack))
	createWorkflow(t, ns, "wf", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"),
		func(wf *cyclonev1alpha1.Workflow) {
			wf.Spec.Notification = cyclonev1alpha1.Notification{Policy: cyclonev1alpha1.NotificationPolicyAlways, Receivers: []cyclonev1alpha1.NotificationReceiver{
				{Type: cyclonev1alpha1.NotificationTypeWebhook, Addresses: []string{srv.URL}},
				{Type: cyclonev1alpha1.NotificationTypeEmail, Addresses: []string{"ops@example.com"}},
				{Type: cyclonev1alpha1.NotificationTypeSlack, Addresses: []string{"#ci"}},
			}}
		})
	createRun(t, ns, "run1", "wf")

	run := waitRun(t, ns, "run1", cyclonev1alpha1.StatusSucceeded)
	succeeded := cyclonev1alpha1.NotificationStatus{Result: cyclonev1alpha1.NotificationResultSucceeded}
	g.Expect(run.Status.Notifications).To(Equal(map[string]cyclonev1alpha1.NotificationStatus{
		"Webhook:" + srv.URL:    succeeded,
		"Email:ops@example.com": succeeded,
		"Slack:#ci":             succeeded,
	}))
	mails := ms.All()
	g.Expect(mails).To(HaveLen(1))
	g.Expect(mails[0].To).To(Equal([]string{"ops@example.com"}))
	g.Expect(mails[0].Subject).To(Equal("[gyre] WorkflowRun " + ns + "/run1 Succeeded"))
	g.Expect(mails[0].Body).To(ContainSubstring("\n- a: Succeeded"))
	posts := slack.All()
	g.Expect(posts).To(HaveLen(1))
	g.Expect(posts[0].Channel).To(Equal("#ci"))
	g.Expect(posts[0].Text).To(Equal(mails[0].Body))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].Name).To(Equal("run1"))
	g.Expect(got[0].Status.Overall.Phase).To(Equal(cyclonev1alpha1.StatusSucceeded))
}

// TestEngine_slowReceiverHoldsNoWorker: a receiver that does not answer
// keeps its run's notification pending, and nothing else: with a single
// reconcile worker, another run still runs to the end meanwhile. Once the
// receiver answers, the outcome is recorded and the run is cleaned.
func TestEngine_slowReceiverHoldsNoWorker(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	}))
	defer srv.Close()
	released := sync.OnceFunc(func() { close(release) })
	defer released()
	ns := newTenant(t)
	cfg := testConfig()
	cfg.MaxConcurrentReconciles = 1
	cfg.HTTPClient = &http.Client{} // no timeout: the receiver decides
	startEngine(t, env.Config, cfg)
	createWorkflow(t, ns, "slow", []*cyclonev1alpha1.Stage{stage(ns, "a", succeed("0s"))}, items("a"),
		func(wf *cyclonev1alpha1.Workflow) {
			wf.Spec.Notification = cyclonev1alpha1.Notification{Receivers: []cyclonev1alpha1.NotificationReceiver{
				{Type: cyclonev1alpha1.NotificationTypeWebhook, Addresses: []string{srv.URL}},
			}}
		})
	createWorkflow(t, ns, "fast", []*cyclonev1alpha1.Stage{stage(ns, "b", succeed("0s"))}, items("b"))
	createRun(t, ns, "waiting", "slow")
	g.Eventually(arrived).WithTimeout(time.Minute).Should(Receive())

	createRun(t, ns, "other", "fast")
	waitRun(t, ns, "other", cyclonev1alpha1.StatusSucceeded)
	waiting := getRun(g, ns, "waiting")
	g.Expect(waiting.Status.Notifications).To(BeEmpty())
	g.Expect(waiting.Status.Cleaned).To(BeFalse(), "GC waits for the notifications")

	released()
	run := waitRun(t, ns, "waiting", cyclonev1alpha1.StatusSucceeded)
	g.Expect(run.Status.Notifications).To(Equal(map[string]cyclonev1alpha1.NotificationStatus{
		"Webhook:" + srv.URL: {Result: cyclonev1alpha1.NotificationResultSucceeded},
	}))
}

// maxLive is the most stage Pods alive at once in the event stream.

// notifyConfig points an engine's notifications at the test mail server
// and Slack.
func notifyConfig(cfg Config, ms *notifytest.MailServer, slack *notifytest.Slack) Config {
	cfg.SMTP = notify.SMTPConfig{Addr: ms.Addr, From: "gyre <gyre@example.com>", Username: notifytest.SMTPUser, Password: notifytest.SMTPPassword}
	cfg.SlackToken = notifytest.SlackToken
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

// TestEngine_notificationToLoopbackIsRefused: a Workflow whose webhook
// points at an address on the controller's own host gets no request sent
// there; the run's status says why, in a few words.
func TestEngine_notificationToLoopbackIsRefused(t *testing.T) {
	requireCluster(t)
	g := NewWithT(t)
	rcv := notifytest.StartReceiver(t, func(http.ResponseWriter, *http.Request) {})
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
	g.Expect(rcv.All()).To(BeEmpty(), "the receiver is never called")
}
