package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gyreops/gyre/internal/kubeauth"
)

// tokenCookie holds a token the viewer signed in with at /login: a
// browser sends no Authorization header of its own, and the API server's
// service proxy drops it anyway.
const tokenCookie = "gyre-token"

// viewer is who a page is rendered for.
type viewer struct {
	s     *Server
	token string
	// user is nil for a trusted local viewer, who may read everything.
	user *authenticationv1.UserInfo
}

// may says whether the viewer may get the named object, or, with name
// empty, every object of the resource in namespace ("" for a
// cluster-scoped resource).
func (v *viewer) may(ctx context.Context, group, resource, namespace, name string) (bool, error) {
	if v.user == nil {
		return true, nil
	}
	return v.s.access.Allowed(ctx, v.token, v.user, authorizationv1.ResourceAttributes{
		Verb: "get", Group: group, Resource: resource, Namespace: namespace, Name: name,
	})
}

// requestToken is the request's token: a header first (a client, or the
// API server's service proxy with kubeauth.TokenHeader), else the cookie
// /login set.
func requestToken(r *http.Request) string {
	if t := kubeauth.Token(r); t != "" {
		return t
	}
	if c, err := r.Cookie(tokenCookie); err == nil {
		return strings.TrimSpace(c.Value)
	}
	return ""
}

type viewerHandler func(w http.ResponseWriter, r *http.Request, v *viewer)

// guard renders next for the request's user, or the page that says how
// to sign in.
func (s *Server) guard(next viewerHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.o.TrustLocal {
			next(w, r, &viewer{s: s})
			return
		}
		token := requestToken(r)
		if token == "" {
			s.unauthorized(w, r, "")
			return
		}
		user, err := s.access.Authenticate(r.Context(), token)
		if err != nil {
			s.fail(w, r, err, "checking your token")
			return
		}
		if user == nil {
			s.unauthorized(w, r, "The API server does not accept this token.")
			return
		}
		next(w, r, &viewer{s: s, token: token, user: user})
	}
}

// unauthorized answers 401 with how to reach the view with a token.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, problem string) {
	s.render(w, r, http.StatusUnauthorized, "login.html", loginData{Problem: problem})
}

type loginData struct {
	Problem string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login.html", loginData{})
}

// login checks a pasted token and keeps it in a cookie only the view
// reads (HttpOnly, same site only), so that the browser sends it with
// every page.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	// Another site's form must not sign the browser in with a token of
	// its choosing; browsers say where a request comes from.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		http.Error(w, "sign in from the view's own page", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		s.unauthorized(w, r, "Paste a token.")
		return
	}
	user, err := s.access.Authenticate(r.Context(), token)
	if err != nil {
		s.fail(w, r, err, "checking your token")
		return
	}
	if user == nil {
		s.unauthorized(w, r, "The API server does not accept this token.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: tokenCookie, Value: token,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	redirect(w, "runs", http.StatusSeeOther)
}

// forbidden answers 403 naming the right the viewer lacks; it is checked
// before the object is read, so it tells nothing of whether it exists.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, v *viewer, what string) {
	s.render(w, r, http.StatusForbidden, "error.html", errorData{
		Title:   "Forbidden",
		Message: fmt.Sprintf("User %q may not get %s.", v.user.Username, what),
	})
}

type errorData struct {
	Title, Message string
}

// fail answers 500 and logs err; the page says only what failed, as err
// may name internals.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, doing string) {
	ctrl.LoggerFrom(r.Context()).Error(err, "Serving the web view", "path", r.URL.Path, "doing", doing)
	s.render(w, r, http.StatusInternalServerError, "error.html", errorData{
		Title: "Error", Message: "Failed " + doing + "; the controller's log says why.",
	})
}
