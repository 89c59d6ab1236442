// Package ui serves the recovery timeline: GET /api/v1/timeline (the
// operations layer's TimelineDoc as JSON) and, at /, a single page that
// draws it (assets embedded, nothing loaded from elsewhere, so it works
// air-gapped). It is read-only: no route changes anything.
//
// It binds loopback by default. On any other address every API request
// must carry "Authorization: Bearer <token>" (the page reads the token from
// its URL fragment, #token=..., which browsers never send to the server).
package ui

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"redback/internal/ops"
	"redback/internal/pitr"
)

//go:embed assets
var assets embed.FS

// DefaultListen is `redback ui`'s address.
const DefaultListen = "127.0.0.1:9478"

// Options configure a Handler.
type Options struct {
	// Sources returns the sources to show (called per request).
	Sources func() []ops.Source
	// Listen is the address the server binds; off loopback, Token is
	// required.
	Listen string
	// Token is the bearer token API requests must carry off loopback.
	Token string
	// Events caches the log scan between requests; nil makes one.
	Events *ops.EventScanner
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// ErrTokenRequired is returned by CheckListen for an address off loopback
// without a token.
var ErrTokenRequired = errors.New("this listener is off loopback: a bearer token is required (ui_token in the config, --token for redback ui)")

// Loopback reports whether the listen address binds only loopback
// (127.0.0.0/8, ::1 or localhost). An empty host binds every address.
func Loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckListen returns ErrTokenRequired when listen is off loopback and
// token is empty.
func CheckListen(listen, token string) error {
	if !Loopback(listen) && token == "" {
		return ErrTokenRequired
	}
	return nil
}

// Register adds the timeline's routes (GET /, /assets/, /api/v1/timeline)
// to mux.
func Register(mux *http.ServeMux, o Options) {
	if o.Events == nil {
		o.Events = &ops.EventScanner{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/"
		noCache(w)
		files.ServeHTTP(w, r2)
	})
	mux.Handle("GET /assets/", http.StripPrefix("/assets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noCache(w)
		files.ServeHTTP(w, r)
	})))
	mux.Handle("GET /api/v1/timeline", o.authorize(http.HandlerFunc(o.timeline)))
	mux.Handle("GET /api/v1/point", o.authorize(http.HandlerFunc(o.point)))
}

// Handler is a mux with only the timeline's routes.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	Register(mux, o)
	return mux
}

func noCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
}

// authorize refuses API requests without the token when the server is off
// loopback.
func (o Options) authorize(h http.Handler) http.Handler {
	return Guard(h, Policy{Remote: !Loopback(o.Listen), Token: o.Token})
}

// Policy says who may use an HTTP listener of redback's.
type Policy struct {
	// Remote: the listener is off loopback, so requests need Token.
	Remote bool
	// Token is the bearer token (ui_token). Off loopback without one,
	// every guarded request is refused (403).
	Token string
	// Open are paths answered without a token anyway: exact paths, or
	// prefixes ending in "/" ("/" itself is only the exact path).
	Open []string
}

// Allow reports whether r may be served, and otherwise the status code and
// message of the refusal. The token is compared in constant time.
func (p Policy) Allow(r *http.Request) (bool, int, string) {
	if !p.Remote {
		return true, 0, ""
	}
	for _, o := range p.Open {
		if r.URL.Path == o || (o != "/" && strings.HasSuffix(o, "/") && strings.HasPrefix(r.URL.Path, o)) {
			return true, 0, ""
		}
	}
	if p.Token == "" {
		return false, http.StatusForbidden, ErrTokenRequired.Error()
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(p.Token)) != 1 {
		return false, http.StatusUnauthorized, "a bearer token is required (open the page as /#token=TOKEN)"
	}
	return true, 0, ""
}

// StaticPaths are the page and its assets: they hold no data (the page
// reads the token from its URL fragment and sends it with every API call),
// so a browser can load them without a token.
var StaticPaths = []string{"/", "/assets/"}

// Guard serves h only to requests p allows.
func Guard(h http.Handler, p Policy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, code, msg := p.Allow(r); !ok {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="redback"`)
			}
			writeError(w, code, msg)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// queryTimes parses the named RFC 3339 query parameters into ts (left
// zero when absent); on a bad one it writes the error and returns false.
func queryTimes(w http.ResponseWriter, r *http.Request, names []string, ts ...*time.Time) bool {
	for i, name := range names {
		if s := r.URL.Query().Get(name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s=%q: want an RFC 3339 time such as 2026-11-25T14:03:12Z", name, s))
				return false
			}
			*ts[i] = t
		}
	}
	return true
}

func (o Options) timeline(w http.ResponseWriter, r *http.Request) {
	q := ops.Query{Name: r.URL.Query().Get("name")}
	if !queryTimes(w, r, []string{"from", "to"}, &q.From, &q.To) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	doc, err := ops.Timeline(ctx, o.Sources(), q, o.Events, o.Now())
	var unknown *ops.UnknownSourceError
	switch {
	case errors.As(err, &unknown):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, doc)
}

// point is GET /api/v1/point?name=S&at=T, or
// ?name=S&before_command=NAME[&after=T][&key=PATTERN]: the facts of
// restoring that point, planned as `redback restore` plans it.
func (o Options) point(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var at, after time.Time
	if !queryTimes(w, r, []string{"at", "after"}, &at, &after) {
		return
	}
	var t pitr.Target
	switch cmd := strings.TrimSpace(q.Get("before_command")); {
	case !at.IsZero() && cmd == "":
		t = pitr.AtTime(at)
	case at.IsZero() && cmd != "":
		t = pitr.BeforeCommand(pitr.CommandMatch{Name: cmd, After: after, KeyPattern: q.Get("key")})
	default:
		writeError(w, http.StatusBadRequest, "give one point: at=TIME, or before_command=NAME (with after=TIME, key=PATTERN)")
		return
	}
	var src *ops.Source
	var names []string
	for _, s := range o.Sources() {
		names = append(names, s.Name)
		if s.Name == q.Get("name") || q.Get("name") == "" && src == nil {
			src = &s
		}
	}
	if src == nil || q.Get("name") == "" && len(names) > 1 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("name=%q: give one of the sources %s", q.Get("name"), strings.Join(names, ", ")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	f, err := ops.Point(ctx, *src, t)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, f)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

// WriteJSON writes v as indented JSON with status code, never cached.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
