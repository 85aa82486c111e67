package control

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// StateResponse is an actor's committed state (GET
// /v1/actors/{actor}/state), for an operator deciding whether to repair it.
type StateResponse struct {
	Actor     string `json:"actor"`
	Behaviour string `json:"behaviour"`
	// Module is the code version of the module that wrote the state ("" if
	// none has yet); Schema is the state schema version of Data.
	Module string `json:"module"`
	Schema uint32 `json:"schema"`
	// Size is len(Data) in bytes.
	Size int `json:"size"`
	// Empty says there is no state: the actor's next message runs Init.
	Empty bool `json:"empty"`
	// Encoding says what Data looks like: "json", "text" (UTF-8, not
	// JSON), "binary", or "none" when Empty.
	Encoding string `json:"encoding"`
	// Data is the state's bytes (base64 in JSON); Text is the same bytes
	// when they are valid UTF-8.
	Data []byte `json:"data"`
	Text string `json:"text,omitempty"`
}

// StateRequest is the body of PUT /v1/actors/{actor}/state: the new state
// as Data (base64) or, for UTF-8, as Text (used when Data is empty).
type StateRequest struct {
	Data []byte `json:"data,omitempty"`
	Text string `json:"text,omitempty"`
	// Schema is the state schema version of the new state; omitted, the
	// schema the actor's module reads.
	Schema *uint32 `json:"schema,omitempty"`
}

func (r StateRequest) body() []byte {
	if len(r.Data) > 0 {
		return r.Data
	}
	return []byte(r.Text)
}

// StateSummary describes a state without its bytes: what a repair changed.
type StateSummary struct {
	Module string `json:"module"`
	Schema uint32 `json:"schema"`
	Size   int    `json:"size"`
	Empty  bool   `json:"empty"`
}

// RepairResponse is the answer of a state repair (PUT
// /v1/actors/{actor}/state, POST /v1/actors/{actor}/state/reset): the state
// before and after, and the history record that keeps it.
type RepairResponse struct {
	Actor string `json:"actor"`
	// Action is "replace" or "reset".
	Action string        `json:"action"`
	Old    StateSummary  `json:"old"`
	New    StateSummary  `json:"new"`
	Record UpgradeRecord `json:"record"`
}

// NewStateResponse is st of actor as the API shows it.
func NewStateResponse(actor, behaviour string, st mailbox.State) StateResponse {
	out := StateResponse{Actor: actor, Behaviour: behaviour, Module: st.Module, Schema: st.Schema,
		Size: len(st.Data), Data: st.Data, Encoding: encoding(st.Data)}
	if out.Data == nil {
		out.Data = []byte{}
	}
	out.Empty = st.Module == "" && len(st.Data) == 0
	if out.Empty {
		out.Encoding = "none"
	}
	if utf8.Valid(st.Data) {
		out.Text = string(st.Data)
	}
	return out
}

// encoding names what data looks like, for showing it.
func encoding(data []byte) string {
	switch {
	case json.Valid(data):
		return "json"
	case utf8.Valid(data):
		return "text"
	}
	return "binary"
}

func summary(st mailbox.State) StateSummary {
	return StateSummary{Module: st.Module, Schema: st.Schema, Size: len(st.Data), Empty: st.Module == "" && len(st.Data) == 0}
}

func newRepairResponse(action string, r core.Repair) RepairResponse {
	return RepairResponse{Actor: r.Actor, Action: action, Old: summary(r.Old), New: summary(r.New), Record: NewUpgradeRecord(r.Record)}
}

func (s *Server) getState(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	rec, err := s.opts.Runtime.Store().Actor(r.Context(), actor)
	if err != nil {
		return nil, err
	}
	st, err := s.opts.Runtime.Store().State(r.Context(), actor)
	if err != nil {
		return nil, fmt.Errorf("state of actor %q: %w", actor, err)
	}
	return NewStateResponse(actor, rec.Behaviour, st), nil
}

func (s *Server) putState(r *http.Request) (any, error) {
	actor := r.PathValue("actor")
	limit := s.opts.Runtime.MaxStateSize()
	// The state travels base64-encoded: room for that, and the other fields.
	bodyLimit := base64.StdEncoding.EncodedLen(limit) + 4096
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(bodyLimit)+1))
	if err != nil {
		return nil, badRequest(fmt.Sprintf("request body: %v", err))
	}
	if len(body) > bodyLimit {
		return nil, &apiError{http.StatusRequestEntityTooLarge, CodeTooLarge,
			fmt.Sprintf("the new state of actor %q is over the %d-byte state limit (limits.max_state_size): nothing was changed", actor, limit)}
	}
	var req StateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badRequest(`request body: give the new state as {"data": BASE64} or {"text": TEXT}`)
		}
		return nil, badRequest(fmt.Sprintf("request body: %v", err))
	}
	rep, err := s.opts.Runtime.ReplaceState(r.Context(), actor, req.body(), req.Schema)
	if err != nil {
		return nil, err
	}
	return newRepairResponse("replace", rep), nil
}

func (s *Server) resetState(r *http.Request) (any, error) {
	rep, err := s.opts.Runtime.ResetState(r.Context(), r.PathValue("actor"))
	if err != nil {
		return nil, err
	}
	return newRepairResponse("reset", rep), nil
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
