package web

import (
	"crypto/subtle"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
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
	mux.Handle("/api/", o.guard(http.StripPrefix("/api", o.API)))
	mux.Handle("GET /events", o.guard(&events{api: o.API, every: o.Every}))
	return http.NewCrossOriginProtection().Handler(mux)
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
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"` + what + ` needs the web view's token: open the address graft run logged (it ends in #token=...), or send it in the ` + TokenHeader + ` header","code":"unauthorized"}` + "\n"))
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
