package web

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Options configure the view.
type Options struct {
	// API is the control API's handler (core/control.Server.Handler),
	// served under /api/.
	API http.Handler
	// Token is what every change, and every read off loopback, must
	// carry. It must not be empty.
	Token string
	// Loopback says the listener is on loopback: reads need no token.
	Loopback bool
	// Every is how often the event stream sends a fresh view (default 1 s).
	Every time.Duration
	// Logger receives refused requests (default slog.Default()).
	Logger *slog.Logger
}

// TokenHeader carries the token on API requests.
const TokenHeader = "X-Graft-Token" //nolint:gosec // G101: a header's name, not a credential

// Handler serves the view, its API and its event stream.
func Handler(o Options) http.Handler {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(files)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		http.ServeFileFS(w, r, files, "index.html")
	})
	api := http.StripPrefix("/api", dotNames(o.API))
	mux.Handle("GET /api/", o.guard(api))
	for _, route := range changes {
		mux.Handle("POST /api"+route, o.guard(api))
	}
	mux.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse(w, http.StatusForbidden, "forbidden", r.Method+" "+r.URL.Path+" is not offered by the web view: use the graft command on the core's machine")
	}))
	mux.Handle("GET /events", o.guard(&events{api: o.API, every: o.Every, streams: make(chan struct{}, maxStreams)}))
	return o.hostCheck(http.NewCrossOriginProtection().Handler(mux))
}

// dotNames undoes the page's escape of a path segment that is an actor
// named "." or "..": a browser removes such a segment from a URL however
// it is percent-encoded, so the page sends "%2E;" or "%2E%2E;" (seg in
// app.js), which no other name encodes to (encodeURIComponent always
// escapes ";"). The API then gets "%2E" or "%2E%2E", as from curl.
func dotNames(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		esc := r.URL.EscapedPath()
		if !strings.Contains(esc, ";") {
			next.ServeHTTP(w, r)
			return
		}
		segs := strings.Split(esc, "/")
		for i, s := range segs {
			if u := strings.ToUpper(s); u == "%2E;" || u == "%2E%2E;" {
				segs[i] = strings.TrimSuffix(s, ";")
			}
		}
		raw := strings.Join(segs, "/")
		path, err := url.PathUnescape(raw)
		if err != nil {
			refuse(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("path %q: %v", esc, err))
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = path, raw
		next.ServeHTTP(w, r2)
	})
}

// changes are the API's changes the web view offers (issue: retry a dead
// letter, upgrade, promote, abort, rollback, stop, start); the others
// (send, call, spawn, destroy, replace a state) stay with the graft
// command, behind the control socket's file permissions.
var changes = []string{
	"/v1/actors/{actor}/deadletters/retry",
	"/v1/actors/{actor}/stop",
	"/v1/actors/{actor}/start",
	"/v1/behaviours/{behaviour}/upgrade",
	"/v1/behaviours/{behaviour}/dry-run",
	"/v1/behaviours/{behaviour}/promote",
	"/v1/behaviours/{behaviour}/abort",
	"/v1/behaviours/{behaviour}/rollback",
}

// hostCheck refuses, on a loopback listener, a request for any other host
// name: a page whose name was rebound to 127.0.0.1 (DNS rebinding) is
// same-origin to the browser, and would otherwise read what loopback
// serves without a token.
func (o Options) hostCheck(next http.Handler) http.Handler {
	if !o.Loopback {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if ip := net.ParseIP(strings.Trim(host, "[]")); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			next.ServeHTTP(w, r)
			return
		}
		o.Logger.Info("web view request refused: not a loopback host name", "host", r.Host, "remote", r.RemoteAddr)
		refuse(w, http.StatusMisdirectedRequest, "misdirected", "the web view on loopback answers only for 127.0.0.1, [::1] or localhost, not "+r.Host)
	})
}

func refuse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg, "code": code})
	_, _ = w.Write(append(b, '\n'))
}

// guard lets a request through when its method and token allow it (the
// package doc's rules), and answers 401 otherwise.
func (o Options) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if (read && o.Loopback) || o.tokenOK(r) {
			next.ServeHTTP(w, r)
			return
		}
		what := "a change"
		if read {
			what = "a read off loopback"
		}
		o.Logger.Info("web view request refused: no valid token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		refuse(w, http.StatusUnauthorized, "unauthorized", what+" needs the web view's token: open the address graft run logged (it ends in #token=...), or send it in the "+TokenHeader+" header")
	})
}

func (o Options) tokenOK(r *http.Request) bool {
	got := r.Header.Get(TokenHeader)
	if got == "" {
		got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if got == "" && r.URL.Path == "/events" {
		got = r.URL.Query().Get("token")
	}
	return o.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(o.Token)) == 1
}
