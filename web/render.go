package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

// page is what the layout gets: the page's own data in Data.
type page struct {
	// Root leads from the page back to the view's root, relatively, so
	// that links work wherever the view is mounted: through the API
	// server's service proxy, a page's path has a long prefix.
	Root string
	// Nav is the section the page belongs to.
	Nav string
	// User is who the page is rendered for; empty when trusted locally.
	User string
	Data any
}

var funcs = template.FuncMap{
	"lower": strings.ToLower,
}

// render writes the named page, or a plain 500 if it fails to execute
// (into a buffer first, so that no half page is sent).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	s.renderFor(w, r, status, name, nil, data)
}

func (s *Server) renderFor(w http.ResponseWriter, r *http.Request, status int, name string, v *viewer, data any) {
	p := page{Root: rootOf(r.URL.Path), Nav: strings.TrimSuffix(name, ".html"), Data: data}
	if v != nil && v.user != nil {
		p.User = v.user.Username
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		ctrl.LoggerFrom(r.Context()).Error(err, "Rendering a page", "page", name)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// rootOf is the relative path from path to the view's root.
func rootOf(path string) string {
	n := strings.Count(path, "/") - 1
	if n <= 0 {
		return "./"
	}
	return strings.Repeat("../", n)
}

// Duration formats d for people, to the second and with at most two
// units: "0s", "45s", "3m07s", "2h05m", "3d04h". Negative durations, from
// clocks that disagree, are 0s.
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmtUnits(int64(d/time.Second), "s", 0, "")
	case d < time.Hour:
		return fmtUnits(int64(d/time.Minute), "m", int64(d%time.Minute/time.Second), "s")
	case d < 24*time.Hour:
		return fmtUnits(int64(d/time.Hour), "h", int64(d%time.Hour/time.Minute), "m")
	}
	return fmtUnits(int64(d/(24*time.Hour)), "d", int64(d%(24*time.Hour)/time.Hour), "h")
}

func fmtUnits(major int64, mu string, minor int64, nu string) string {
	if nu == "" {
		return fmt.Sprintf("%d%s", major, mu)
	}
	return fmt.Sprintf("%d%s%02d%s", major, mu, minor, nu)
}

// Age is how long ago t was, as Duration formats it, or "" for no time.
func Age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return Duration(now.Sub(t))
}

func logFrom(r *http.Request) logr.Logger { return ctrl.LoggerFrom(r.Context()) }
