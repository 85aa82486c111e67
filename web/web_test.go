package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/graft-host/graft/web"
)

// The rules of the package doc, on a stand-in API that answers 200 to
// anything that reaches it: reads off loopback need the token; changes
// always do, and only those the view offers; on loopback only loopback
// host names are served.
func TestWhoMayDoWhat(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	const token = "0123456789abcdef"
	do := func(h http.Handler, method, path, host, tok string) int {
		req := httptest.NewRequest(method, path, strings.NewReader("{}"))
		if host != "" {
			req.Host = host
		}
		if tok != "" {
			req.Header.Set(web.TokenHeader, tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	remote := web.Handler(web.Options{API: api, Token: token})
	assert.Equal(t, http.StatusUnauthorized, do(remote, "GET", "/api/v1/status", "graft.example", ""), "a read off loopback needs the token")
	assert.Equal(t, http.StatusOK, do(remote, "GET", "/api/v1/status", "graft.example", token))
	assert.Equal(t, http.StatusUnauthorized, do(remote, "GET", "/events", "graft.example", ""))
	assert.Equal(t, http.StatusOK, do(remote, "POST", "/api/v1/behaviours/kv/promote", "graft.example", token))
	assert.Equal(t, http.StatusForbidden, do(remote, "POST", "/api/v1/actors/a/send", "graft.example", token), "send is not offered")
	assert.Equal(t, http.StatusForbidden, do(remote, "PUT", "/api/v1/actors/a/state", "graft.example", token), "replacing a state is not offered")

	local := web.Handler(web.Options{API: api, Token: token, Loopback: true})
	assert.Equal(t, http.StatusOK, do(local, "GET", "/api/v1/status", "127.0.0.1:8080", ""), "a read on loopback needs nothing")
	assert.Equal(t, http.StatusOK, do(local, "GET", "/api/v1/status", "localhost:8080", ""))
	assert.Equal(t, http.StatusOK, do(local, "GET", "/api/v1/status", "[::1]:8080", ""))
	assert.Equal(t, http.StatusMisdirectedRequest, do(local, "GET", "/api/v1/status", "evil.example:8080", ""), "DNS rebinding")
	assert.Equal(t, http.StatusUnauthorized, do(local, "POST", "/api/v1/actors/a/deadletters/retry", "127.0.0.1:8080", ""), "a change needs the token on loopback too")
	assert.Equal(t, http.StatusOK, do(local, "POST", "/api/v1/actors/a/deadletters/retry", "127.0.0.1:8080", token))
	assert.Equal(t, http.StatusUnauthorized, do(local, "POST", "/api/v1/actors/a/stop", "127.0.0.1:8080", "0123456789abcdeX"), "a wrong token")
	assert.Equal(t, http.StatusOK, do(local, "GET", "/", "127.0.0.1:8080", ""), "the page")
}

// An actor named "." or "..", which a browser would take out of any URL,
// reaches the API as its name through the page's escape ("%2E%2E;"); a
// name that merely looks like the escape is left alone.
func TestDotNamesReachTheAPI(t *testing.T) {
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/actors/{actor}/state", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.PathValue("actor"))
	})
	h := web.Handler(web.Options{API: api, Token: "0123456789abcdef", Loopback: true})
	for path, want := range map[string]string{
		"/api/v1/actors/%2E%2E;/state":       "..",
		"/api/v1/actors/%2E;/state":          ".",
		"/api/v1/actors/%2e%2e;/state":       "..",
		"/api/v1/actors/%252E%252E%3B/state": "%2E%2E;",
		"/api/v1/actors/a%3Bb/state":         "a;b",
		"/api/v1/actors/%2Ehidden/state":     ".hidden",
	} {
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "127.0.0.1:8080"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusOK, rec.Code, path)
		assert.Equal(t, want, rec.Body.String(), path)
	}
}
