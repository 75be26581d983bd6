package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cyclonev1alpha1 "github.com/gyreops/gyre/api/cyclone/v1alpha1"
	"github.com/gyreops/gyre/internal/convention"
	"github.com/gyreops/gyre/internal/hooksig"
)

// WebhookPath is where the webhook server takes events: an SCM posts to
// WebhookPath + "<namespace>", the namespace of the triggers it may fire.
const WebhookPath = "/webhooks/"

// DefaultMaxBodyBytes caps a webhook body when WebhookOptions says nothing:
// larger requests get 413. GitHub caps its payloads at 25 MB but push
// events with up to 20 commits stay well under this.
const DefaultMaxBodyBytes = 1 << 20

// WebhookOptions configures a WebhookServer.
type WebhookOptions struct {
	// Addr is the address Start listens on, such as ":9443".
	Addr string
	// CertFile and KeyFile, when both set, make Start serve TLS.
	CertFile, KeyFile string
	// MaxBodyBytes caps a request body; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// APIReader reads Secrets and fresh triggers straight from the API
	// server, so the server needs no cluster-wide Secret informer; the
	// client when nil. A Secret read is reused for SecretTTL.
	APIReader client.Reader
	// Recorder records an event on each trigger that fires; none when nil.
	Recorder events.EventRecorder
	// Clock stamps status.lastFired; the real clock when nil.
	Clock clock.PassiveClock
	// Logger logs each request; logr.Discard() when unset.
	Logger logr.Logger
	// ReplayWindow is how long an event, told apart by trigger, kind,
	// commit (or pull request head) and comment, starts no second run,
	// whatever its delivery id: a signed body replayed with a new id is
	// the same event. DefaultReplayWindow when 0.
	ReplayWindow time.Duration
	// Routes are more handlers the server serves beside the triggers',
	// by http.ServeMux pattern, such as the Repository push receiver at
	// "/webhooks/repositories": one port and one TLS setup for every
	// webhook gyre takes. A pattern more specific than WebhookPath wins
	// over the triggers' namespace path.
	Routes map[string]http.Handler
}

// DefaultReplayWindow is the replay window when WebhookOptions says
// nothing: longer than any SCM's redelivery retries, short enough that a
// deliberate rebuild of a commit the next day is not taken for a replay.
const DefaultReplayWindow = time.Hour

// WebhookServer starts WorkflowRuns of SCM WorkflowTriggers on signed
// GitHub, GitLab, Bitbucket Cloud, Bitbucket Server and Gitea push, tag,
// pull request and pull request comment events, and on Subversion
// post-commit events that carry the trigger's token. It is an http.Handler and a controller-runtime Runnable.
type WebhookServer struct {
	client  client.Client
	opts    WebhookOptions
	tally   *tally
	secrets *secretCache
}

// NewWebhookServer returns a server that lists triggers and creates runs
// with c.
func NewWebhookServer(c client.Client, opts WebhookOptions) *WebhookServer {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.APIReader == nil {
		opts.APIReader = c
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.ReplayWindow <= 0 {
		opts.ReplayWindow = DefaultReplayWindow
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	return &WebhookServer{
		client:  c,
		opts:    opts,
		tally:   newTally(c, opts.APIReader),
		secrets: newSecretCache(opts.APIReader, opts.Clock),
	}
}

// firedRun is one entry of the server's answer.
type firedRun struct {
	Trigger string `json:"trigger"`
	Run     string `json:"run"`
	// Created is false for a replayed delivery whose run exists already.
	Created bool `json:"created"`
}

// webhookResponse is the JSON body of an accepted request.
type webhookResponse struct {
	Message string     `json:"message"`
	Runs    []firedRun `json:"runs,omitempty"`
}

// ServeHTTP fires the SCM triggers of the namespace in the path that an
// event's signature proves it is for.
//
// It answers 401 when no trigger of the event's repository accepts the
// signature, 413 for a body over the limit, 400 for a request that is not
// a GitHub, GitLab, Bitbucket, Gitea or Subversion event, 202 with the
// runs when triggers fired (a replay lists the runs of the first
// delivery, created false) and 200 when the event is authentic but no
// trigger's policy fires on it, or is Bitbucket Server's test connection.
func (s *WebhookServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	defer observeDelivery(&w, req)()
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "only POST is accepted")
		return
	}
	ns, ok := strings.CutPrefix(req.URL.Path, WebhookPath)
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 {
		httpError(w, http.StatusNotFound, "post to "+WebhookPath+"<namespace>")
		return
	}
	provider, eventType, delivery, err := readEventHeaders(req.Header)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, status, err := hooksig.ReadBody(w, req, s.opts.MaxBodyBytes)
	if err != nil {
		httpError(w, status, err.Error())
		return
	}
	e, err := parseEvent(provider, eventType, body)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if delivery != "" {
		e.delivery = delivery
	}
	if e.kind == eventPing && e.repo == "" {
		// Bitbucket Server's "test connection" names no repository, so no
		// secret can be chosen to check it; it is answered and fires
		// nothing, which tells a sender nothing about the triggers.
		writeJSON(w, http.StatusOK, webhookResponse{Message: "ping received; nothing to run for it"})
		return
	}
	// The logger stays out of ctx: client-go logs response bodies, a
	// Secret's among them, to a logger it finds there.
	log := s.opts.Logger.WithValues("namespace", ns, "provider", provider, "event", eventType, "delivery", e.delivery)
	ctx := req.Context()

	trigs, err := s.authenticTriggers(ctx, log, ns, e, req.Header, body)
	if err != nil {
		log.Error(err, "Listing triggers")
		httpError(w, http.StatusInternalServerError, "cannot read triggers")
		return
	}
	if len(trigs) == 0 {
		log.V(1).Info("Refusing event: no trigger of the repository accepts its signature", "repo", e.repo)
		httpError(w, http.StatusUnauthorized, "signature does not match any trigger of the repository")
		return
	}
	if e.kind == eventPing || e.kind == "" {
		writeJSON(w, http.StatusOK, webhookResponse{Message: "event accepted; nothing to run for it"})
		return
	}

	resp, err := s.fireAll(ctx, log, trigs, e)
	if err != nil {
		log.Error(err, "Starting runs")
		httpError(w, http.StatusInternalServerError, "cannot start runs; redeliver the event")
		return
	}
	if len(resp.Runs) == 0 {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	writeJSON(w, http.StatusAccepted, resp)
}

// authenticTriggers returns the enabled SCM triggers in ns for the event's
// repository whose secret signed the request.
func (s *WebhookServer) authenticTriggers(ctx context.Context, log logr.Logger, ns string, e scmEvent, h http.Header, body []byte) ([]*cyclonev1alpha1.WorkflowTrigger, error) {
	var list cyclonev1alpha1.WorkflowTriggerList
	if err := s.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list triggers in %q: %w", ns, err)
	}
	secrets := map[string][]byte{}
	var out []*cyclonev1alpha1.WorkflowTrigger
	for i := range list.Items {
		trig := &list.Items[i]
		if trig.Spec.Type != cyclonev1alpha1.TriggerTypeSCM || trig.Spec.Disabled || !sameRepo(e.provider, trig.Spec.SCM.Repo, e.repo) {
			continue
		}
		name := trig.Spec.SCM.Secret
		if name == "" {
			log.V(1).Info("Trigger has no webhook secret", "WorkflowTrigger", klog.KObj(trig))
			continue
		}
		secret, seen := secrets[name]
		if !seen {
			var err error
			if secret, err = s.secrets.get(ctx, client.ObjectKey{Namespace: ns, Name: name}); err != nil {
				log.Error(err, "Reading webhook secret", "WorkflowTrigger", klog.KObj(trig))
			}
			secrets[name] = secret
		}
		if authentic(e.provider, h, body, secret) {
			out = append(out, trig)
		}
	}
	return out, nil
}

// fireAll starts a run for each trigger whose policy fires on e.
func (s *WebhookServer) fireAll(ctx context.Context, log logr.Logger, trigs []*cyclonev1alpha1.WorkflowTrigger, e scmEvent) (webhookResponse, error) {
	resp := webhookResponse{Message: "no trigger fires on this event"}
	var errs []error
	for _, trig := range trigs {
		if !matches(trig.Spec.SCM.SCMTriggerPolicy, e) {
			continue
		}
		fr, err := s.fire(ctx, log, trig, e)
		observeSCMFire(trig, fr, err)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp.Runs = append(resp.Runs, fr)
	}
	if len(resp.Runs) > 0 {
		resp.Message = "runs started"
	}
	return resp, errors.Join(errs...)
}

// replayKey identifies the event e is for trigger, whatever delivery
// brought it: its provider, kind, repository, ref, commit (a pull
// request's head) and comment. It is a label value.
func replayKey(trigger string, e scmEvent) string {
	return convention.Hash(strings.Join([]string{e.provider, trigger, e.kind, e.repo, e.ref, e.sha, e.commentID, e.comment}, "\x00"), 32)
}

// scmRunName is the seq-th run of the event of key for trigger. Two
// deliveries of one event racing each other, on one replica or on two,
// both find the event's latest run and name the same next one, and the API
// server creates it once: which run is next never depends on a clock, so
// deliveries on either side of a window boundary, or on replicas whose
// clocks differ, cannot start two. A Subversion commit happens once: its
// name does not depend on seq.
func scmRunName(trigger, key string, e scmEvent, seq int) string {
	if e.provider == providerSVN {
		return convention.RunName(trigger, convention.Hash(key, 10))
	}
	return convention.RunName(trigger, convention.Hash(key+"/"+strconv.Itoa(seq), 10))
}

// recentRun returns the name of a run of the event of key received within
// the window before now, or "", and the sequence number of the event's
// next run. It reads the API server, not a cache: a run created a moment
// ago counts. A Subversion commit's run counts whenever it was received.
// Runs of the event started before runs were numbered count as number 0.
func (s *WebhookServer) recentRun(ctx context.Context, ns, key string, e scmEvent, now time.Time) (string, int, error) {
	list := &cyclonev1alpha1.WorkflowRunList{}
	if err := s.opts.APIReader.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{convention.LabelSCMEvent: key}); err != nil {
		return "", 0, fmt.Errorf("list runs of event %s: %w", key, err)
	}
	recent, last := "", 0
	for _, r := range list.Items {
		received, err := time.Parse(time.RFC3339, r.Annotations[convention.AnnotationSCMReceived])
		if err != nil {
			continue // not the server's run: the label alone proves nothing
		}
		if seq, err := strconv.Atoi(r.Annotations[convention.AnnotationSCMSequence]); err == nil {
			last = max(last, seq)
		}
		if recent == "" && (e.provider == providerSVN || now.Sub(received) < s.opts.ReplayWindow) {
			recent = r.Name
		}
	}
	return recent, last + 1, nil
}

// fire starts the run of e for trig and records it in trig's status. An
// event that has a run within the replay window starts none: a replayed
// body, whatever its delivery id, finds the run of the first delivery.
func (s *WebhookServer) fire(ctx context.Context, log logr.Logger, trig *cyclonev1alpha1.WorkflowTrigger, e scmEvent) (firedRun, error) {
	now := s.opts.Clock.Now()
	key := replayKey(trig.Name, e)
	existing, seq, err := s.recentRun(ctx, trig.Namespace, key, e, now)
	if err != nil {
		return firedRun{Trigger: trig.Name}, fmt.Errorf("trigger %q: %w", trig.Name, err)
	}
	if existing != "" {
		log.Info("Replayed event: run exists", "WorkflowRun", klog.KRef(trig.Namespace, existing))
		return firedRun{Trigger: trig.Name, Run: existing}, nil
	}
	run := newRun(trig, scmRunName(trig.Name, key, e, seq), map[string]string{
		convention.AnnotationSCMDelivery: e.provider + "/" + e.delivery,
		convention.AnnotationSCMSequence: strconv.Itoa(seq),
		convention.AnnotationSCMEvent:    e.kind,
		convention.AnnotationSCMReceived: now.UTC().Format(time.RFC3339),
	}, e.variables())
	run.Labels[convention.LabelSCMEvent] = key
	for i := range run.Spec.ResourceParams {
		rp := &run.Spec.ResourceParams[i]
		rp.Parameters = setParameter(rp.Parameters, VarSCMRevision, e.revision())
	}
	fr := firedRun{Trigger: trig.Name, Run: run.Name}
	if err := s.client.Create(ctx, run); err != nil {
		if apierrors.IsAlreadyExists(err) {
			log.Info("Replayed event: run exists", "WorkflowRun", klog.KObj(run))
			return fr, nil
		}
		return fr, fmt.Errorf("create run %q for trigger %q: %w", run.Name, trig.Name, err)
	}
	fr.Created = true
	log.Info("Started run", "WorkflowRun", klog.KObj(run), "ref", e.ref, "revision", e.revision())
	if s.opts.Recorder != nil {
		s.opts.Recorder.Eventf(trig, run, corev1.EventTypeNormal, ReasonFired, ReasonFired,
			"Started WorkflowRun %s for %s %s of %s", run.Name, e.kind, e.ref, e.revision())
	}
	fired := cyclonev1alpha1.FiredRun{Name: run.Name, Time: &metav1.Time{Time: now}, Event: e.kind}
	if err := s.tally.record(ctx, client.ObjectKeyFromObject(trig), fired); err != nil {
		// The run is started and a replay will not start another; only the
		// count is behind.
		log.Error(err, "Recording the run in the trigger's status")
	}
	return fr, nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, webhookResponse{Message: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
