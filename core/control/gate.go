package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Gate answers on the control socket of a core that cannot start yet,
// because its store does not answer (an etcd cluster without a quorum):
// the socket is up, `graft status` says why the core holds no actors,
// and every other request is refused with that reason (503, code
// unavailable) rather than left to time out on a closed socket. Once the
// core runs, Open hands every request to its Server on the same socket,
// so a client never sees the socket go away between the two.
type Gate struct {
	info   CoreInfo
	logger *slog.Logger
	http   *http.Server
	// server is the core's Server once Open was called.
	server atomic.Pointer[Server]

	mu  sync.Mutex
	why string
}

// NewGate builds a Gate that answers for the core info names.
func NewGate(info CoreInfo, logger *slog.Logger) *Gate {
	if logger == nil {
		logger = slog.Default()
	}
	g := &Gate{info: info, logger: logger, why: "starting"}
	g.http = &http.Server{
		Handler:           http.HandlerFunc(g.serveHTTP),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return g
}

// Wait sets the reason the core gives for holding no actors.
func (g *Gate) Wait(why string) {
	g.mu.Lock()
	g.why = why
	g.mu.Unlock()
}

func (g *Gate) reason() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.why
}

// Open hands every later request to s, the running core's Server.
func (g *Gate) Open(s *Server) { g.server.Store(s) }

func (g *Gate) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s := g.server.Load(); s != nil {
		s.mux.ServeHTTP(w, r)
		return
	}
	why := g.reason()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/status":
		writeJSON(w, http.StatusOK, Status{Core: g.info, Actors: []ActorStatus{}, Upgrades: []UpgradeProgress{}, Waiting: why})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/core":
		writeJSON(w, http.StatusOK, g.info)
	default:
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Code: CodeUnavailable,
			Error: fmt.Sprintf("the core has not started, so it holds no actors: %s", why)})
	}
}

// Serve answers on l until Shutdown; it closes l when it returns.
func (g *Gate) Serve(l net.Listener) error {
	if err := g.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control API: %w", err)
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight until
// ctx ends, then closes the rest.
func (g *Gate) Shutdown(ctx context.Context) error {
	if err := g.http.Shutdown(ctx); err != nil {
		g.http.Close()
		return fmt.Errorf("control API shutdown: %w", err)
	}
	return nil
}
