package control

import (
	"bytes"
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
	rep, err := s.opts.Runtime.ReplaceState(r.Context(), actor, req.Body(), req.Schema)
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
