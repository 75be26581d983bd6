package runlogs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gyreops/gyre/internal/kubeauth"
)

// TokenHeader carries the caller's bearer token through the API server's
// service proxy (see kubeauth.TokenHeader).
const TokenHeader = kubeauth.TokenHeader

// NewHandler serves stored logs to callers allowed to read the run, the
// way kube-rbac-proxy guards a service: the caller's bearer token (header
// Authorization or TokenHeader) is checked with a TokenReview, and the
// user it names must be allowed to "get" the WorkflowRun (group
// cyclone.dev) in its namespace, checked with a SubjectAccessReview.
// Unauthenticated callers get 401, unauthorized ones 403; logs can hold
// secrets, so nothing is served otherwise.
//
// Routes, relative to where the handler is mounted (it reads only the
// path's last segments, so mount it with http.StripPrefix):
//
//	GET /{namespace}/{run}
//	    text/plain, one stored log a line: "<stage> <attempt> <container>"
//	GET /{namespace}/{run}/{stage}[?attempt=N][&container=C]
//	    text/plain, the stage's log: the given attempt or the latest stored
//	    one; the given container, or every container (init containers
//	    included) each after a "==> <container> <==" line
//
// Live logs of running stages are read from pods/log with the caller's own
// credentials (gyre logs -f does so); this handler serves what the engine
// kept.
func NewHandler(store Store, clientset kubernetes.Interface) http.Handler {
	h := &handler{store: store, auth: kubeauth.Reviewer{Client: clientset}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{namespace}/{run}", h.guard(h.list))
	mux.HandleFunc("GET /{namespace}/{run}/{stage}", h.guard(h.stage))
	return mux
}

type handler struct {
	store Store
	auth  kubeauth.Reviewer
}

// guard lets a request through only for a caller allowed to get the run.
func (h *handler) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, run := r.PathValue("namespace"), r.PathValue("run")
		if validName("namespace", ns) != nil || validName("run", run) != nil {
			http.Error(w, "bad namespace or run name", http.StatusBadRequest)
			return
		}
		token := kubeauth.Token(r)
		if token == "" {
			http.Error(w, "unauthorized: no bearer token", http.StatusUnauthorized)
			return
		}
		user, err := h.auth.Authenticate(r.Context(), token)
		if err != nil {
			ctrl.LoggerFrom(r.Context()).Error(err, "Checking a bearer token")
			http.Error(w, "authentication check failed", http.StatusInternalServerError)
			return
		}
		if user == nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		allowed, err := h.auth.Allowed(r.Context(), user, authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: "get", Group: "cyclone.dev", Resource: "workflowruns", Name: run,
		})
		if err != nil {
			ctrl.LoggerFrom(r.Context()).Error(err, "Checking access to a run", "namespace", ns, "run", run)
			http.Error(w, "authorization check failed", http.StatusInternalServerError)
			return
		}
		if !allowed {
			http.Error(w, fmt.Sprintf("forbidden: user %q cannot get workflowruns %q in namespace %q", user.Username, run, ns), http.StatusForbidden)
			return
		}
		next(w, r)
	}
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	keys, err := h.store.List(r.Context(), r.PathValue("namespace"), r.PathValue("run"))
	if err != nil {
		ctrl.LoggerFrom(r.Context()).Error(err, "Listing logs")
		http.Error(w, "cannot list logs", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, k := range keys {
		fmt.Fprintf(w, "%s %d %s\n", k.Stage, k.Attempt, k.Container)
	}
}

func (h *handler) stage(w http.ResponseWriter, r *http.Request) {
	ns, run, stage := r.PathValue("namespace"), r.PathValue("run"), r.PathValue("stage")
	if validName("stage", stage) != nil {
		http.Error(w, "bad stage name", http.StatusBadRequest)
		return
	}
	keys, err := h.store.List(r.Context(), ns, run)
	if err != nil {
		ctrl.LoggerFrom(r.Context()).Error(err, "Listing logs")
		http.Error(w, "cannot list logs", http.StatusInternalServerError)
		return
	}
	keys = Select(keys, stage, r.URL.Query().Get("attempt"), r.URL.Query().Get("container"))
	if len(keys) == 0 {
		http.Error(w, fmt.Sprintf("no stored log of stage %q of run %s/%s", stage, ns, run), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, k := range keys {
		if len(keys) > 1 {
			fmt.Fprintf(w, "==> %s <==\n", k.Container)
		}
		if err := h.copy(r.Context(), w, k); err != nil {
			ctrl.LoggerFrom(r.Context()).Error(err, "Serving a log")
			return
		}
	}
}

func (h *handler) copy(ctx context.Context, w io.Writer, k Key) error {
	rc, err := h.store.Open(ctx, k)
	if errors.Is(err, ErrNotFound) {
		return nil // removed with its run since the listing
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// Select keeps the keys of stage: of the given attempt or else the latest
// one, and of the given container or else all.
func Select(keys []Key, stage, attempt, container string) []Key {
	var want int32
	if attempt != "" {
		n, err := strconv.ParseInt(attempt, 10, 32)
		if err != nil {
			return nil
		}
		want = int32(n)
	} else {
		for _, k := range keys {
			if k.Stage == stage && k.Attempt > want {
				want = k.Attempt
			}
		}
	}
	var out []Key
	for _, k := range keys {
		if k.Stage == stage && k.Attempt == want && (container == "" || k.Container == container) {
			out = append(out, k)
		}
	}
	return out
}
