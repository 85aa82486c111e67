package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
)

// Client is the typed client of the control API. Every method takes a
// context: its deadline bounds the whole request.
type Client struct {
	socket string
	http   *http.Client
	// TraceParent, if set, is sent as the W3C traceparent header of every
	// request, so that what the request does continues that trace when
	// the core traces (an invalid one is ignored by the core).
	TraceParent string
}

// NewClient returns a client of the core listening on socket; nothing is
// dialled until the first request.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Socket is the socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// do sends a request with body in (nil for none) and decodes the answer
// into out (nil to discard).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://graft"+path, body)
	if err != nil {
		return fmt.Errorf("control request %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.TraceParent != "" && printableASCII(c.TraceParent) {
		// A value HTTP cannot carry would fail the request before it is
		// sent; the core ignores an invalid one anyway.
		req.Header.Set("traceparent", c.TraceParent)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == syscall.ENOENT || errno == syscall.ECONNREFUSED) {
			return &NoCoreError{Socket: c.socket, Err: err}
		}
		if errors.As(err, &errno) && errno == syscall.EACCES {
			return fmt.Errorf("cannot open %s: permission denied (run as the user that runs the core): %w", c.socket, err)
		}
		if u := c.uncertain(method, path, in, err); u != nil {
			return u // sent, maybe durable: say so, and how to retry safely
		}
		return fmt.Errorf("control request %s %s on %s: %w", method, path, c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("control response %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb = ErrorBody{Error: fmt.Sprintf("%s %s: %s", method, path, resp.Status), Code: CodeInternal}
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Code, Msg: eb.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// actorDo is do on one of actor's endpoints (tail). A name no actor can
// have (empty, control characters, over 255 bytes) is refused here with
// the store's own words, rather than sent as a path that names another
// endpoint or none.
func (c *Client) actorDo(ctx context.Context, method, actor, tail string, in, out any) error {
	if err := checkActorName(actor); err != nil {
		return fmt.Errorf("cannot address actor %q: %w", actor, err)
	}
	return c.do(ctx, method, actorPath(actor, tail), in, out)
}

// actorPath is the API path of one of actor's endpoints.
func actorPath(actor, tail string) string { return "/v1/actors/" + pathSegment(actor) + tail }

// pathSegment escapes a name (an actor's, a behaviour's) into one URL path
// segment, whatever it holds: PathEscape escapes "/" (so account/alice
// stays one segment), and the dot segments "." and "..", which PathEscape
// keeps and HTTP path cleaning would resolve into another endpoint, are
// escaped too. The server's r.PathValue decodes the segment back.
func pathSegment(name string) string {
	seg := url.PathEscape(name)
	if seg == "." || seg == ".." {
		seg = strings.ReplaceAll(seg, ".", "%2E")
	}
	return seg
}

// Info identifies the core.
func (c *Client) Info(ctx context.Context) (CoreInfo, error) {
	var out CoreInfo
	return out, c.do(ctx, http.MethodGet, "/v1/core", nil, &out)
}

// Status reports every actor.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	return out, c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
}

// Send enqueues payload for actor; it returns once the message is durable.
// With req.AfterSeconds or req.At it sets a durable timer instead, and
// returns once the timer is durable (SendResponse.TimerID).
func (c *Client) Send(ctx context.Context, actor string, req SendRequest) (SendResponse, error) {
	var out SendResponse
	return out, c.actorDo(ctx, http.MethodPost, actor, "/send", req, &out)
}

// Call sends and waits for the reply (bounded by req.TimeoutMS on the core
// and by ctx here).
//
// A refusal returns the response (Refused set) and a *RefusedError.
func (c *Client) Call(ctx context.Context, actor string, req CallRequest) (CallResponse, error) {
	var out CallResponse
	if err := c.actorDo(ctx, http.MethodPost, actor, "/call", req, &out); err != nil {
		return out, err
	}
	if out.Refused {
		return out, &RefusedError{Actor: out.Actor, ID: out.ID, Reason: out.Error}
	}
	return out, nil
}

// Stop stops an actor; it stays stopped until Start, or until the core
// restarts (a stop is not recorded in the store, as OTP's
// terminate_child is not kept across a node's restart).
func (c *Client) Stop(ctx context.Context, actor string) error {
	return c.actorDo(ctx, http.MethodPost, actor, "/stop", nil, nil)
}

// Start starts a stopped actor.
func (c *Client) Start(ctx context.Context, actor string) error {
	return c.actorDo(ctx, http.MethodPost, actor, "/start", nil, nil)
}

// Destroy removes an actor for good: it stops at once, and its registry
// entry, mailbox, state, replies, idempotency window, dead letters and the
// timers it set are deleted. Stop keeps them.
func (c *Client) Destroy(ctx context.Context, actor string) error {
	return c.actorDo(ctx, http.MethodPost, actor, "/destroy", nil, nil)
}

// Spawn creates actor, driven by req.Behaviour, with req's first message
// if any. An actor of that name with that behaviour is left as it is
// (Created false); with another behaviour it fails with an *APIError of
// code CodeSpawnConflict.
func (c *Client) Spawn(ctx context.Context, actor string, req SpawnRequest) (SpawnResponse, error) {
	var out SpawnResponse
	return out, c.actorDo(ctx, http.MethodPost, actor, "/spawn", req, &out)
}

// Timers lists actor's pending timers, earliest first ([] for none).
func (c *Client) Timers(ctx context.Context, actor string) ([]Timer, error) {
	out := []Timer{}
	if err := c.actorDo(ctx, http.MethodGet, actor, "/timers", nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []Timer{}
	}
	return out, nil
}

// DeadLetters lists an actor's dead letters, oldest first.
func (c *Client) DeadLetters(ctx context.Context, actor string) ([]DeadLetter, error) {
	var out []DeadLetter
	return out, c.actorDo(ctx, http.MethodGet, actor, "/deadletters", nil, &out)
}

// Messages lists the messages waiting in actor's mailbox and the last it
// handled.
func (c *Client) Messages(ctx context.Context, actor string) (Messages, error) {
	var out Messages
	return out, c.actorDo(ctx, http.MethodGet, actor, "/messages", nil, &out)
}

// Retry moves dead letters back into the actor's mailbox.
func (c *Client) Retry(ctx context.Context, actor string, req RetryRequest) (RetryResponse, error) {
	var out RetryResponse
	return out, c.actorDo(ctx, http.MethodPost, actor, "/deadletters/retry", req, &out)
}

// History lists upgrades, rollbacks and state repairs, oldest first
// ([] for none).
func (c *Client) History(ctx context.Context) ([]UpgradeRecord, error) {
	out := []UpgradeRecord{}
	if err := c.do(ctx, http.MethodGet, "/v1/history", nil, &out); err != nil {
		return nil, err
	}
	if out == nil { // the core answered null
		out = []UpgradeRecord{}
	}
	return out, nil
}

// Upgrade upgrades every actor of behaviour to binary ("" for the
// configured binary) and returns the upgrade's history record.
func (c *Client) Upgrade(ctx context.Context, behaviour, binary string) (UpgradeRecord, error) {
	return c.UpgradeWith(ctx, behaviour, UpgradeRequest{Binary: binary})
}

// UpgradeWith is Upgrade with every option of the request (Force, Canary).
func (c *Client) UpgradeWith(ctx context.Context, behaviour string, req UpgradeRequest) (UpgradeRecord, error) {
	var out UpgradeRecord
	err := c.do(ctx, http.MethodPost, "/v1/behaviours/"+pathSegment(behaviour)+"/upgrade", req, &out)
	return out, err
}

// DryRun checks binary ("" for the configured one) against every actor
// of behaviour without moving any, and returns what it found.
func (c *Client) DryRun(ctx context.Context, behaviour, binary string) (DryRunReport, error) {
	var out DryRunReport
	err := c.do(ctx, http.MethodPost, "/v1/behaviours/"+pathSegment(behaviour)+"/dry-run", DryRunRequest{Binary: binary}, &out)
	return out, err
}

// Upgrades lists the upgrades, rollbacks and dry runs in progress.
func (c *Client) Upgrades(ctx context.Context) ([]UpgradeProgress, error) {
	out := []UpgradeProgress{}
	if err := c.do(ctx, http.MethodGet, "/v1/upgrades", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Promote ends behaviour's canary bake now and moves the rest of its
// actors; Abort ends it and rolls the canary back. Either fails with
// code conflict when no canary of behaviour is baking.
func (c *Client) Promote(ctx context.Context, behaviour string) (DecisionResponse, error) {
	return c.decide(ctx, behaviour, "promote")
}

// Abort ends behaviour's canary bake now and rolls the canary back (see
// Promote).
func (c *Client) Abort(ctx context.Context, behaviour string) (DecisionResponse, error) {
	return c.decide(ctx, behaviour, "abort")
}

func (c *Client) decide(ctx context.Context, behaviour, decision string) (DecisionResponse, error) {
	var out DecisionResponse
	err := c.do(ctx, http.MethodPost, "/v1/behaviours/"+pathSegment(behaviour)+"/"+decision, nil, &out)
	return out, err
}

// Rollback moves every actor of behaviour back to its previous version and
// returns the rollback's history record.
func (c *Client) Rollback(ctx context.Context, behaviour string) (UpgradeRecord, error) {
	var out UpgradeRecord
	err := c.do(ctx, http.MethodPost, "/v1/behaviours/"+pathSegment(behaviour)+"/rollback", nil, &out)
	return out, err
}

// State returns an actor's committed state.
func (c *Client) State(ctx context.Context, actor string) (StateResponse, error) {
	var out StateResponse
	return out, c.actorDo(ctx, http.MethodGet, actor, "/state", nil, &out)
}

// SetState replaces an actor's committed state (the actor is paused
// between two commits meanwhile) and records the repair in the history.
func (c *Client) SetState(ctx context.Context, actor string, req StateRequest) (RepairResponse, error) {
	var out RepairResponse
	return out, c.actorDo(ctx, http.MethodPut, actor, "/state", req, &out)
}

// ResetState clears an actor's committed state, so that its next message
// runs Init, and records the repair in the history.
func (c *Client) ResetState(ctx context.Context, actor string) (RepairResponse, error) {
	var out RepairResponse
	return out, c.actorDo(ctx, http.MethodPost, actor, "/state/reset", nil, &out)
}

// printableASCII says whether s is only printable ASCII, as a traceparent
// is (and as an HTTP header value may be without quoting).
func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
