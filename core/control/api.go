package control

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// Runtime is what the control API needs from a running core; *core.Core
// implements it. It is an interface so the server can be built before the
// core exists (the socket is claimed first) and so it names exactly what
// the API touches.
type Runtime interface {
	Status(ctx context.Context) ([]core.ActorStatus, error)
	Send(ctx context.Context, actor string, payload []byte, opts core.SendOptions) (mailbox.Receipt, error)
	Call(ctx context.Context, actor string, payload []byte, opts core.SendOptions) ([]byte, error)
	StopActor(ctx context.Context, name string) error
	StartActor(ctx context.Context, name string) error
	DestroyActor(ctx context.Context, name string) error
	// ReplaceState and ResetState repair an actor's state (see the
	// endpoints under /v1/actors/{actor}/state); MaxStateSize bounds it.
	ReplaceState(ctx context.Context, actor string, data []byte, schema *uint32) (core.Repair, error)
	ResetState(ctx context.Context, actor string) (core.Repair, error)
	MaxStateSize() int
	Store() mailbox.Store
}

// Upgrader performs upgrades and rollbacks; cmd/graft passes the upgrade
// package's implementation in, so this package does not depend on it.
type Upgrader interface {
	// Upgrade moves every actor of behaviour to the module built from
	// binary ("" means the configured binary, rebuilt in place).
	Upgrade(ctx context.Context, behaviour, binary string) (mailbox.UpgradeRecord, error)
	// Rollback moves every actor of behaviour back to its previous version.
	Rollback(ctx context.Context, behaviour string) (mailbox.UpgradeRecord, error)
}

// CoreInfo identifies the core answering on the socket.
type CoreInfo struct {
	PID     int       `json:"pid"`
	Socket  string    `json:"socket"`
	Config  string    `json:"config,omitempty"`
	Started time.Time `json:"started"`
	Version string    `json:"version,omitempty"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Core   CoreInfo      `json:"core"`
	Actors []ActorStatus `json:"actors"`
}

// ActorStatus is one actor's row: the core's ActorStatus in stable JSON
// names, with durations in seconds.
type ActorStatus struct {
	Name           string  `json:"name"`
	Behaviour      string  `json:"behaviour"`
	Module         string  `json:"module"`
	Schema         uint32  `json:"schema"`
	Status         string  `json:"status"`
	Depth          uint64  `json:"depth"`
	InFlight       int64   `json:"in_flight"`
	Processed      uint64  `json:"processed"`
	Failed         uint64  `json:"failed"`
	Restarts       int     `json:"restarts"`
	ModuleRestarts int     `json:"module_restarts"`
	DeadLetters    uint64  `json:"dead_letters"`
	LastExit       string  `json:"last_exit,omitempty"`
	PID            int     `json:"pid,omitempty"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	LastError      string  `json:"last_error,omitempty"`
}

func fromCore(s core.ActorStatus) ActorStatus {
	return ActorStatus{
		Name: s.Name, Behaviour: s.Behaviour, Module: s.Module, Schema: s.Schema, Status: s.Status,
		Depth: s.Depth, InFlight: s.InFlight, Processed: s.Processed, Failed: s.Failed,
		Restarts: s.Restarts, ModuleRestarts: s.ModuleRestarts, DeadLetters: s.DeadLetters,
		LastExit: s.LastExit, PID: s.Pid, UptimeSeconds: s.Uptime.Seconds(), LastError: s.LastError,
	}
}

// SendRequest is the body of send; Text is a convenience for UTF-8
// payloads (used when Payload is empty).
type SendRequest struct {
	Payload []byte `json:"payload,omitempty"`
	Text    string `json:"text,omitempty"`
	// ID makes the send idempotent: a retry with the same id enqueues nothing.
	ID string `json:"id,omitempty"`
	// Sender labels the sender (default "client").
	Sender string `json:"sender,omitempty"`
}

func (r SendRequest) body() []byte {
	if len(r.Payload) > 0 {
		return r.Payload
	}
	return []byte(r.Text)
}

// SendResponse is the store's receipt for a send.
type SendResponse struct {
	Actor     string `json:"actor"`
	ID        string `json:"id,omitempty"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	// Outcome is pending, applied, replied, refused or dead-lettered.
	Outcome string `json:"outcome"`
	// Reply is the committed reply (base64 in JSON); Text is the same
	// reply when it is valid UTF-8.
	Reply []byte `json:"reply,omitempty"`
	Text  string `json:"text,omitempty"`
	// Error is the refusal (outcome refused) or the last error
	// (outcome dead-lettered).
	Error string `json:"error,omitempty"`
}

// CallRequest is the body of call.
type CallRequest struct {
	SendRequest
	// TimeoutMS bounds the wait for the reply (default 30000).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// CallResponse carries the handler's reply and the id it was made under,
// so a caller that timed out can retry with the same id.
//
// A refusal (the handler's terminal error) is the call's outcome, not a
// failure of the API: it comes with status 200, Refused set and Error
// holding the handler's text; a retry with the same id gets it again.
type CallResponse struct {
	Actor string `json:"actor"`
	ID    string `json:"id"`
	// Reply is the handler's reply (base64 in JSON); Text is the same
	// reply when it is valid UTF-8.
	Reply   []byte `json:"reply"`
	Text    string `json:"text,omitempty"`
	Refused bool   `json:"refused,omitempty"`
	Error   string `json:"error,omitempty"`
}

// replyText is reply as text when it is valid UTF-8, else "".
func replyText(reply []byte) string {
	if utf8.Valid(reply) {
		return string(reply)
	}
	return ""
}

// ActorResponse acknowledges stop, start and destroy.
type ActorResponse struct {
	Actor  string `json:"actor"`
	Action string `json:"action"`
}

// DeadLetter is one dead-lettered message.
type DeadLetter struct {
	Seq        uint64    `json:"seq"`
	ID         string    `json:"id,omitempty"`
	Sender     string    `json:"sender"`
	Payload    []byte    `json:"payload"`
	Attempts   uint32    `json:"attempts"`
	LastError  string    `json:"last_error"`
	EnqueuedAt time.Time `json:"enqueued_at"`
	DeadAt     time.Time `json:"dead_at"`
}

// RetryRequest names the dead letters to move back into the mailbox: one
// by Seq or by message ID, or All of them.
type RetryRequest struct {
	Seq uint64 `json:"seq,omitempty"`
	ID  string `json:"id,omitempty"`
	All bool   `json:"all,omitempty"`
}

// Requeued is one retried dead letter: its old and new sequence numbers.
type Requeued struct {
	Seq    uint64 `json:"seq"`
	NewSeq uint64 `json:"new_seq"`
	ID     string `json:"id,omitempty"`
}

// RetryResponse lists what was requeued.
type RetryResponse struct {
	Actor    string     `json:"actor"`
	Requeued []Requeued `json:"requeued"`
}

// UpgradeRequest is the body of upgrade; Binary "" means the behaviour's
// configured binary.
type UpgradeRequest struct {
	Binary string `json:"binary,omitempty"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Error codes of ErrorBody.Code.
const (
	CodeNotFound       = "not_found"
	CodeBadRequest     = "bad_request"
	CodeTooLarge       = "too_large"
	CodeDiskFull       = "disk_full" // HTTP 507: the store's disk is full, nothing was stored
	CodeIDReused       = "id_reused" // HTTP 409: the id was first used for another payload
	CodeTimeout        = "timeout"
	CodeNoReply        = "no_reply"
	CodeConflict       = "conflict"
	CodeUnavailable    = "unavailable"
	CodeNotImplemented = "not_implemented"
	CodeInternal       = "internal"
)
