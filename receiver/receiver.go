package receiver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gyrev1alpha1 "github.com/gyreops/gyre/api/gyre/v1alpha1"
	"github.com/gyreops/gyre/internal/hooksig"
)

// Path is where the webhook server takes push events for Repositories.
const Path = "/webhooks/repositories"

// SecretKey is the key of the webhook secret in the Secret a Repository's
// spec.webhook.secretRef names.
const SecretKey = hooksig.SecretKey

// ReasonPushReceived is the reason of the event recorded on a Repository
// that a push asked to fetch.
const ReasonPushReceived = "PushReceived"

// DefaultMaxBodyBytes caps an event's body when Options says nothing:
// larger requests get 413. Push events of a few commits take a few
// kilobytes; GitHub's of 20 commits stay well under this.
const DefaultMaxBodyBytes = 1 << 20

// maxRepositories bounds the Repositories one event may name, and so the
// Secret reads a forged event costs.
const maxRepositories = 64

// Options configures a Receiver.
type Options struct {
	// APIReader reads webhook Secrets from the API server; gyre keeps no
	// Secret in a cache. The client when nil.
	APIReader client.Reader
	// Recorder records a PushReceived event on each Repository an event
	// triggers; none when nil.
	Recorder events.EventRecorder
	// Clock makes the requestedAt values; the real clock when nil.
	Clock clock.PassiveClock
	// Logger logs each request; logr.Discard() when unset.
	Logger logr.Logger
	// MaxBodyBytes caps a request body; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
}

// Receiver asks Repositories to fetch when a signed push event of their
// Git server arrives. It is an http.Handler.
type Receiver struct {
	client client.Client
	opts   Options
}

// New returns a Receiver that lists and annotates Repositories with c.
// c may read from the manager's cache: a Repository created a moment ago
// that the cache has not seen yet is fetched when it is created anyway.
func New(c client.Client, opts Options) *Receiver {
	if opts.APIReader == nil {
		opts.APIReader = c
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Receiver{client: c, opts: opts}
}

// response is the JSON body of every answer.
type response struct {
	Message string `json:"message"`
	// Repositories are the names of the Repositories asked to fetch.
	Repositories []string `json:"repositories,omitempty"`
}

// ServeHTTP asks every Repository the push event names, and whose secret
// signed it, to fetch at once.
//
// It answers 202 with the Repositories asked; 401 when no Repository of
// the event's URLs accepts its signature (whether none has that URL, none
// has a webhook secret or the signature is wrong: a sender learns nothing
// of which Repositories exist); 200 to a ping and to event types that
// ask for nothing; 400 to what is not a push event of a known Git server;
// 413 to a body over the limit.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	defer observeDelivery(&w, req)()
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, response{Message: "only POST is accepted"})
		return
	}
	e, err := readHeaders(req.Header)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, response{Message: err.Error()})
		return
	}
	body, status, err := hooksig.ReadBody(w, req, r.opts.MaxBodyBytes)
	if err != nil {
		writeJSON(w, status, response{Message: err.Error()})
		return
	}
	// The logger stays out of ctx: client-go logs response bodies, a
	// Secret's among them, to a logger it finds there.
	log := r.opts.Logger.WithValues("provider", e.provider, "event", e.eventType, "delivery", e.delivery)
	switch e.kind {
	case kindPing:
		writeJSON(w, http.StatusOK, response{Message: "pong"})
		return
	case kindIgnore:
		log.V(1).Info("Ignoring event type")
		writeJSON(w, http.StatusOK, response{Message: fmt.Sprintf("event %q asks for no fetch; ignored", e.eventType)})
		return
	}
	if err := parseBody(&e, body); err != nil {
		writeJSON(w, http.StatusBadRequest, response{Message: err.Error()})
		return
	}
	log = log.WithValues("ref", e.ref, "revision", e.sha)

	ctx := req.Context()
	repos, err := r.authenticRepositories(ctx, log, e, req.Header, body)
	if err != nil {
		log.Error(err, "Listing Repositories")
		writeJSON(w, http.StatusInternalServerError, response{Message: "cannot read Repositories; redeliver the event"})
		return
	}
	if len(repos) == 0 {
		log.V(1).Info("Refusing event: no Repository of its URLs accepts its signature", "urls", e.urls)
		writeJSON(w, http.StatusUnauthorized, response{Message: "signature does not match any Repository of the event's repository"})
		return
	}
	resp, err := r.requestAll(ctx, log, repos, e)
	if err != nil {
		log.Error(err, "Requesting fetches")
		writeJSON(w, http.StatusInternalServerError, response{Message: "cannot request a fetch of every Repository; redeliver the event", Repositories: resp.Repositories})
		return
	}
	writeJSON(w, http.StatusAccepted, resp)
}

// authenticRepositories returns the Repositories whose spec.url is one of
// the event's URLs and whose webhook secret signed the request. Each
// Repository is checked against its own secret: a signature made with
// one Repository's secret never lets another through.
func (r *Receiver) authenticRepositories(ctx context.Context, log logr.Logger, e pushEvent, h http.Header, body []byte) ([]*gyrev1alpha1.Repository, error) {
	var list gyrev1alpha1.RepositoryList
	if err := r.client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list Repositories: %w", err)
	}
	var candidates []*gyrev1alpha1.Repository
	for i := range list.Items {
		repo := &list.Items[i]
		if repo.Spec.Webhook == nil || repo.Spec.Suspend || !matchesAny(repo.Spec.URL, e.urls) {
			continue
		}
		candidates = append(candidates, repo)
	}
	// The cache lists in no particular order; the same event must check
	// the same Repositories.
	slices.SortFunc(candidates, func(a, b *gyrev1alpha1.Repository) int { return strings.Compare(a.Name, b.Name) })
	if len(candidates) > maxRepositories {
		log.Info("Event names more Repositories than one event may trigger; checking the first", "repositories", len(candidates), "max", maxRepositories)
		candidates = candidates[:maxRepositories]
	}
	// Several Repositories (other refs of one remote) may share a
	// Secret: read it once per request. Nothing is kept past the request.
	secrets := map[types.NamespacedName][]byte{}
	var out []*gyrev1alpha1.Repository
	for _, repo := range candidates {
		ref := repo.Spec.Webhook.SecretRef
		key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
		secret, seen := secrets[key]
		if !seen {
			var err error
			if secret, err = r.secret(ctx, key); err != nil {
				log.Error(err, "Reading webhook secret", "Repository", klog.KObj(repo))
			}
			secrets[key] = secret
		}
		if authentic(e.provider, h, body, secret) {
			out = append(out, repo)
		}
	}
	return out, nil
}

// secret reads the webhook secret of Secret key from the API server. Its
// errors name the Secret and key, never the value.
func (r *Receiver) secret(ctx context.Context, key types.NamespacedName) ([]byte, error) {
	var sec corev1.Secret
	if err := r.opts.APIReader.Get(ctx, key, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("secret %s not found", key)
		}
		return nil, fmt.Errorf("get secret %s: %w", key, err)
	}
	v := sec.Data[SecretKey]
	if len(v) == 0 {
		return nil, fmt.Errorf("secret %s has no key %q", key, SecretKey)
	}
	return v, nil
}

// requestAll asks each Repository to fetch, and records why on it.
func (r *Receiver) requestAll(ctx context.Context, log logr.Logger, repos []*gyrev1alpha1.Repository, e pushEvent) (response, error) {
	// One value for every Repository of the event: the annotation tells
	// the Repository controller "fetch", and a later push always brings
	// a new value.
	token := r.opts.Clock.Now().UTC().Format(time.RFC3339Nano)
	resp := response{Message: "fetch requested"}
	var firstErr error
	for _, repo := range repos {
		found, err := r.request(ctx, repo, token)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !found {
			continue // deleted since the list: nothing to fetch
		}
		resp.Repositories = append(resp.Repositories, repo.Name)
		log.Info("Requested fetch", "Repository", klog.KObj(repo))
		if r.opts.Recorder != nil {
			r.opts.Recorder.Eventf(repo, nil, corev1.EventTypeNormal, ReasonPushReceived, "Push",
				"Push of %s to %s received from %s; fetching", short(e.sha, 64), short(e.ref, 256), e.provider)
		}
	}
	slices.Sort(resp.Repositories)
	return resp, firstErr
}

// request sets repo's gyre.dev/requestedAt annotation to token with a
// merge patch: it touches nothing else, and needs no retry on conflict
// with the controller's status writes. It reports false for a Repository
// deleted since it was listed.
func (r *Receiver) request(ctx context.Context, repo *gyrev1alpha1.Repository, token string) (bool, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{gyrev1alpha1.ReconcileRequestAnnotation: token},
	}})
	if err != nil {
		return false, err
	}
	if err := r.client.Patch(ctx, repo, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("annotate Repository %s: %w", repo.Name, err)
	}
	return true, nil
}

// short cuts s, taken from an event's body, to at most n bytes for an
// event note.
func short(s string, n int) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
