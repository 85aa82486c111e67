package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// maxBody bounds a request body: a payload at the store's largest size,
// base64-encoded, plus room for the other fields.
const maxBody = 4<<20 + 4096

// Options configure a Server.
type Options struct {
	// Runtime is the core being controlled.
	Runtime Runtime
	// Upgrader serves upgrade and rollback; nil answers 501.
	Upgrader Upgrader
	// Info identifies the core in /v1/core and /v1/status.
	Info CoreInfo
	// Logger receives one line per failed request (default slog.Default()).
	Logger *slog.Logger
	// Members, in a cluster, lists its live members for /v1/status.
	Members func() []MemberStatus
}

// Server serves the control API. Its handlers run one goroutine per
// request and never hold a lock while they wait, so a slow request (a
// call waiting for its reply, an upgrade) never delays a status request.
type Server struct {
	opts Options
	mux  *http.ServeMux
	http *http.Server
}

// NewServer builds a Server; route adds an endpoint, so adding one is one
// line in routes.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.routes()
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// handlerFunc is an endpoint: it returns the value to send as JSON, or an
// error that writeError maps to a status and code.
type handlerFunc func(r *http.Request) (any, error)

func (s *Server) routes() {
	s.route("GET /v1/core", s.info)
	s.route("GET /v1/status", s.status)
	s.route("POST /v1/actors/{actor}/send", s.send)
	s.route("POST /v1/actors/{actor}/call", s.call)
	s.route("POST /v1/actors/{actor}/stop", s.actorAction("stop", Runtime.StopActor))
	s.route("POST /v1/actors/{actor}/start", s.actorAction("start", Runtime.StartActor))
	s.route("POST /v1/actors/{actor}/destroy", s.actorAction("destroy", Runtime.DestroyActor))
	s.route("POST /v1/actors/{actor}/spawn", s.spawn)
	s.route("GET /v1/actors/{actor}/timers", s.timers)
	s.route("GET /v1/actors/{actor}/deadletters", s.deadLetters)
	s.route("GET /v1/actors/{actor}/messages", s.messages)
	s.route("POST /v1/actors/{actor}/deadletters/retry", s.retry)
	s.route("GET /v1/actors/{actor}/state", s.getState)
	s.route("PUT /v1/actors/{actor}/state", s.putState)
	s.route("POST /v1/actors/{actor}/state/reset", s.resetState)
	s.route("GET /v1/history", s.history)
	s.route("POST /v1/behaviours/{behaviour}/upgrade", s.upgrade)
	s.route("POST /v1/behaviours/{behaviour}/dry-run", s.dryRun)
	s.route("POST /v1/behaviours/{behaviour}/rollback", s.rollback)
	s.route("POST /v1/behaviours/{behaviour}/promote", s.decide(true))
	s.route("POST /v1/behaviours/{behaviour}/abort", s.decide(false))
	s.route("GET /v1/upgrades", s.upgrades)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, CodeNotFound,
			fmt.Sprintf("no endpoint %s %s (see the package doc of graft/core/control/api)", r.Method, r.URL.Path)})
	})
}

func (s *Server) route(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			// A traced caller: its sends, calls and upgrades continue its
			// trace (W3C trace context; core/tracing.go).
			r = r.WithContext(propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		v, err := h(r)
		if err != nil {
			level := slog.LevelWarn
			if status, _ := classify(err); status < 500 && status != http.StatusConflict {
				level = slog.LevelInfo // the caller's mistake, answered; not the core's trouble
			}
			s.opts.Logger.Log(r.Context(), level, "control request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// Handler returns the API's handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Serve answers on l until Shutdown; it closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control API: %w", err)
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight until
// ctx ends, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
		return fmt.Errorf("control API shutdown: %w", err)
	}
	return nil
}

func (s *Server) info(r *http.Request) (any, error) { return s.opts.Info, nil }

func (s *Server) status(r *http.Request) (any, error) {
	rows, err := s.opts.Runtime.Status(r.Context())
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out := Status{Core: s.opts.Info, Actors: make([]ActorStatus, len(rows)), Upgrades: s.inProgress()}
	for i, row := range rows {
		out.Actors[i] = fromCore(row)
	}
	if s.opts.Members != nil {
		out.Members = s.opts.Members()
	}
	return out, nil
}

func (s *Server) send(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	var req SendRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Scheduled() {
		return s.sendLater(r, actor, req)
	}
	if err := core.CheckMessageID(req.ID); err != nil {
		return nil, err
	}
	rc, err := s.opts.Runtime.Send(r.Context(), actor, req.Body(), core.SendOptions{ID: req.ID, Sender: req.Sender})
	if err != nil {
		return nil, err
	}
	return SendResponse{Actor: actor, ID: req.ID, Seq: rc.Seq, Duplicate: rc.Duplicate,
		Outcome: rc.Outcome.String(), Reply: rc.Reply, Text: replyText(rc.Reply), Error: rc.Error}, nil
}

func (s *Server) call(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	var req CallRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Scheduled() {
		return nil, badRequest("a call waits for its reply now: after_seconds and at go with send, not call")
	}
	if err := core.CheckMessageID(req.ID); err != nil {
		return nil, err
	}
	timeout := DefaultCallTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	if req.ID == "" {
		req.ID = newID()
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	reply, err := s.opts.Runtime.Call(ctx, actor, req.Body(), core.SendOptions{ID: req.ID, Sender: req.Sender})
	var refused *core.RefusedError
	if errors.As(err, &refused) {
		return CallResponse{Actor: actor, ID: req.ID, Refused: true, Error: refused.Reason}, nil
	}
	if err != nil {
		return nil, err
	}
	return CallResponse{Actor: actor, ID: req.ID, Reply: reply, Text: replyText(reply)}, nil
}

// actorAction serves stop, start and destroy.
func (s *Server) actorAction(action string, do func(Runtime, context.Context, string) error) handlerFunc {
	return func(r *http.Request) (any, error) {
		actor := r.PathValue("actor")
		if err := s.known(r.Context(), actor); err != nil {
			return nil, err
		}
		if err := do(s.opts.Runtime, r.Context(), actor); err != nil {
			return nil, err
		}
		return ActorResponse{Actor: actor, Action: action}, nil
	}
}

// known fails with a 404 for an actor the core has never heard of.
func (s *Server) known(ctx context.Context, actor string) error {
	_, err := s.opts.Runtime.Store().Actor(ctx, actor) // its errors name the actor
	return err
}

func (s *Server) deadLetters(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	if err := s.known(r.Context(), actor); err != nil {
		return nil, err
	}
	dls, err := s.opts.Runtime.Store().DeadLetters(r.Context(), actor)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %q: %w", actor, err)
	}
	out := make([]DeadLetter, len(dls))
	for i, d := range dls {
		m := d.Message
		out[i] = DeadLetter{Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: m.Payload, Attempts: m.Attempts,
			LastError: m.LastError, EnqueuedAt: m.EnqueuedAt, DeadAt: d.DeadAt}
	}
	return out, nil
}

func (s *Server) retry(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	var req RetryRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !req.All && req.Seq == 0 && req.ID == "" {
		return nil, badRequest("say which dead letter to retry: seq, id, or all")
	}
	if err := s.known(r.Context(), actor); err != nil {
		return nil, err
	}
	dls, err := s.opts.Runtime.Store().DeadLetters(r.Context(), actor)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %q: %w", actor, err)
	}
	out := RetryResponse{Actor: actor, Requeued: []Requeued{}}
	for _, d := range dls {
		m := d.Message
		if !req.All && m.Seq != req.Seq && (req.ID == "" || m.ID != req.ID) {
			continue
		}
		rc, err := s.opts.Runtime.RequeueDeadLetter(r.Context(), actor, m.Seq)
		if err != nil {
			return nil, err // it names the dead letter and the actor
		}
		out.Requeued = append(out.Requeued, Requeued{Seq: m.Seq, NewSeq: rc.Seq, ID: m.ID})
	}
	if len(out.Requeued) == 0 && !req.All {
		var which []string
		if req.Seq != 0 {
			which = append(which, "seq "+strconv.FormatUint(req.Seq, 10))
		}
		if req.ID != "" {
			which = append(which, "id "+strconv.Quote(req.ID))
		}
		return nil, &apiError{http.StatusNotFound, CodeNotFound,
			fmt.Sprintf("actor %q has no dead letter with %s (list them with `graft deadletters %s`)", actor, strings.Join(which, " or "), actor)}
	}
	return out, nil
}

func (s *Server) history(r *http.Request) (any, error) {
	recs, err := s.opts.Runtime.Store().ListHistory(r.Context())
	if err != nil {
		return nil, fmt.Errorf("upgrade history: %w", err)
	}
	return NewUpgradeRecords(recs), nil
}

// errNoUpgrader answers upgrade and rollback in a build without upgrades.
var errNoUpgrader = &apiError{http.StatusNotImplemented, CodeNotImplemented,
	"upgrades are not available in this build of graft: this core has no upgrade machinery"}

func (s *Server) upgrade(r *http.Request) (any, error) {
	var req UpgradeRequest
	if err := s.binaryRequest(r, &req, func() string { return req.Binary }); err != nil {
		return nil, err
	}
	if err := checkCanaryRequest(req); err != nil {
		return nil, err
	}
	return answerRecord(s.opts.Upgrader.Upgrade(r.Context(), r.PathValue("behaviour"), req))
}

// checkCanaryRequest refuses a bake or gates without a canary, and gates
// out of range.
func checkCanaryRequest(req UpgradeRequest) error {
	gates := req.FailureRateIncrease != 0 || req.P99Ratio != 0 || req.MinMessages != 0 || req.Inconclusive != ""
	switch {
	case req.Canary == "" && (req.BakeSeconds != 0 || gates):
		return badRequest("bake_seconds and the health gates go with a canary: give canary (a share such as 10%, or actor names) with a bake above zero")
	case req.BakeSeconds < 0 || math.IsNaN(req.BakeSeconds) || math.IsInf(req.BakeSeconds, 0):
		return badRequest(fmt.Sprintf("bake_seconds %v: give a number of seconds above zero", req.BakeSeconds))
	case req.FailureRateIncrease < 0 || req.FailureRateIncrease > 1 || math.IsNaN(req.FailureRateIncrease):
		return badRequest(fmt.Sprintf("failure_rate_increase %v: give a fraction from 0 to 1 (0.01 is one percentage point)", req.FailureRateIncrease))
	case req.P99Ratio != 0 && (req.P99Ratio < 1 || math.IsNaN(req.P99Ratio) || math.IsInf(req.P99Ratio, 0)):
		return badRequest(fmt.Sprintf("p99_ratio %v: give a ratio of at least 1, such as 1.5", req.P99Ratio))
	case req.MinMessages < 0:
		return badRequest(fmt.Sprintf("min_messages %d: give a count of at least 1", req.MinMessages))
	case req.Inconclusive != "" && req.Inconclusive != "promote" && req.Inconclusive != "rollback" && req.Inconclusive != "hold":
		return badRequest(fmt.Sprintf("inconclusive %q: give promote, rollback or hold (what a bake on too little traffic to judge ends in)", req.Inconclusive))
	}
	return nil
}

// decide hands a promote or abort to behaviour's baking canary.
func (s *Server) decide(promote bool) handlerFunc {
	return func(r *http.Request) (any, error) {
		if s.opts.Upgrader == nil {
			return nil, errNoUpgrader
		}
		b := r.PathValue("behaviour")
		if err := s.opts.Upgrader.Decide(b, promote); err != nil {
			return nil, err
		}
		d := "abort"
		if promote {
			d = "promote"
		}
		return DecisionResponse{Behaviour: b, Decision: d}, nil
	}
}

// upgrades lists the upgrades in progress ([] without an upgrader).
func (s *Server) upgrades(*http.Request) (any, error) { return s.inProgress(), nil }

func (s *Server) inProgress() []UpgradeProgress {
	if s.opts.Upgrader == nil {
		return []UpgradeProgress{}
	}
	if ups := s.opts.Upgrader.InProgress(); ups != nil {
		return ups
	}
	return []UpgradeProgress{}
}

func (s *Server) dryRun(r *http.Request) (any, error) {
	var req DryRunRequest
	if err := s.binaryRequest(r, &req, func() string { return req.Binary }); err != nil {
		return nil, err
	}
	return s.opts.Upgrader.DryRun(r.Context(), r.PathValue("behaviour"), req.Binary)
}

// binaryRequest decodes an upgrade or dry-run body into req and checks it:
// an upgrader is there, and the binary (read from req by binary) is
// absolute.
func (s *Server) binaryRequest(r *http.Request, req any, binary func() string) error {
	if err := decode(r, req); err != nil {
		return err
	}
	if s.opts.Upgrader == nil {
		return errNoUpgrader
	}
	if b := binary(); b != "" && !filepath.IsAbs(b) {
		// Relative to what? The core's working folder is not the caller's.
		return badRequest(fmt.Sprintf("relative binary path %q: give an absolute path (the core's working folder is not yours; graft upgrade resolves it against your folder)", b))
	}
	return nil
}

func (s *Server) rollback(r *http.Request) (any, error) {
	if s.opts.Upgrader == nil {
		return nil, errNoUpgrader
	}
	return answerRecord(s.opts.Upgrader.Rollback(r.Context(), r.PathValue("behaviour")))
}

// answerRecord is the answer of upgrade and rollback: the record as the
// API shows it, or the error.
func answerRecord(rec mailbox.UpgradeRecord, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return NewUpgradeRecord(rec), nil
}

// decode reads a JSON body into v; an empty body leaves v zero.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return badRequest(fmt.Sprintf("request body: %v", err))
	}
	return nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// apiError is an error with its HTTP status and code already chosen.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, CodeBadRequest, msg} }

// classify maps an error to its HTTP status and code.
func classify(err error) (int, string) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code
	case errors.Is(err, mailbox.ErrUnknownActor), errors.Is(err, mailbox.ErrUnknownMessage), errors.Is(err, core.ErrDestroyed):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, mailbox.ErrSpawnConflict):
		return http.StatusConflict, CodeSpawnConflict
	case errors.Is(err, core.ErrNotSupported):
		return http.StatusNotImplemented, CodeNotImplemented
	case errors.Is(err, mailbox.ErrIDReused):
		return http.StatusConflict, CodeIDReused
	case errors.Is(err, mailbox.ErrDiskFull):
		return http.StatusInsufficientStorage, CodeDiskFull
	case errors.Is(err, mailbox.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case errors.Is(err, mailbox.ErrInvalidName), errors.Is(err, mailbox.ErrEmptyActorName), errors.Is(err, ErrBadRequest),
		errors.Is(err, core.ErrInvalidMessageID), errors.Is(err, core.ErrInvalidState):
		return http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, CodeTimeout
	case errors.Is(err, core.ErrNoReply):
		return http.StatusUnprocessableEntity, CodeNoReply
	case errors.Is(err, core.ErrShutdown), errors.Is(err, mailbox.ErrClosed), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusConflict, CodeConflict
}

func writeError(w http.ResponseWriter, err error) {
	status, code := classify(err)
	writeJSON(w, status, ErrorBody{Error: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
