// Package control is the graft core's control API: JSON over HTTP on a unix
// socket. Everything the `graft` command does goes through it, and it is
// documented here so that other tools can drive a core too (curl
// --unix-socket works). It stays responsive while actors start, hang or
// upgrade (guarantee G5): no handler waits on an actor, except send and call,
// which wait only on their own message, and the state repairs, which wait
// for the actor's batch in flight, each within its own deadline.
//
// # Socket
//
// Listen creates the socket owner-only (0600) in a folder it creates 0700,
// and holds an advisory lock (SOCKET.lock) for the life of the core: a
// socket left by a crashed core is detected (its lock is free) and replaced,
// and a second core on the same socket is refused with "another graft core
// is running on SOCKET".
//
// # Protocol
//
// Requests and responses are JSON (Content-Type: application/json). Byte
// strings (payloads, replies) are base64, as encoding/json writes []byte; a
// request may give "text" (UTF-8) instead of "payload". Every response uses
// one style: snake_case field names, durations in seconds as numbers (names
// ending in _seconds) and times in RFC 3339. Every error is a
// non-2xx status with the body {"error": "what went wrong and what to do",
// "code": "not_found" | "bad_request" | "too_large" | "timeout" |
// "no_reply" | "conflict" | "unavailable" | "not_implemented" | "internal"}.
//
// # Endpoints (version 1)
//
//	GET  /v1/core                              CoreInfo: pid, socket, config, start time
//	GET  /v1/status                            Status: CoreInfo and one ActorStatus per actor
//	POST /v1/actors/{actor}/send               SendRequest -> SendResponse (durable once 200)
//	POST /v1/actors/{actor}/call               CallRequest -> CallResponse (the reply)
//	POST /v1/actors/{actor}/stop               -> ActorResponse (stays stopped)
//	POST /v1/actors/{actor}/start              -> ActorResponse
//	POST /v1/actors/{actor}/destroy            -> ActorResponse (mailbox and state kept)
//	GET  /v1/actors/{actor}/deadletters        -> []DeadLetter, oldest first
//	POST /v1/actors/{actor}/deadletters/retry  RetryRequest -> RetryResponse
//	GET  /v1/actors/{actor}/state              -> StateResponse (the committed state)
//	PUT  /v1/actors/{actor}/state              StateRequest -> RepairResponse (replace it)
//	POST /v1/actors/{actor}/state/reset        -> RepairResponse (clear it: Init runs next)
//	GET  /v1/history                           -> []UpgradeRecord, oldest first
//	POST /v1/behaviours/{behaviour}/upgrade    UpgradeRequest -> UpgradeRecord
//	POST /v1/behaviours/{behaviour}/rollback   -> UpgradeRecord
//
// {actor} is one path segment, percent-encoded (url.PathEscape, with "."
// and ".." written %2E and %2E%2E, which path cleaning would otherwise
// resolve): an actor name is 1 to 255 bytes with no control characters,
// so "account/alice" is account%2Falice, and ".", "..", spaces and
// non-ASCII letters are all valid names. A message id (send, call) is at
// most 256 bytes (core.MaxMessageIDSize); a longer one is refused with
// bad_request before anything is enqueued.
//
// # Repairing a state
//
// The state endpoints are for an operator whose actor's state is unusable
// (its handler fails on it). GET shows the committed state: schema, module
// version, size and bytes (base64 "data"; "text" too when UTF-8;
// "encoding" says json, text, binary or none). PUT replaces it and reset
// clears it so that the next message runs Init, as for a new actor: a
// running actor is paused between two commits (its batch in flight commits
// first, messages keep arriving durably), the new state is committed with
// its schema ("schema" in the request, default the schema the actor's
// module reads, which must be able to read it) and the module's version,
// and the actor resumes from it; a stopped actor is claimed and starts
// from it later. A state over the core's limits.max_state_size is refused
// with too_large. Each repair appends a history record of kind "repair"
// (From and To describe the old and new state; its step names the actor).
//
// For example:
//
//	curl --unix-socket run/graft.sock http://graft/v1/status
//	curl --unix-socket run/graft.sock -d '{"text":"hello","id":"m1"}' http://graft/v1/actors/greeter/call
//	curl --unix-socket run/graft.sock -X PUT -d '{"text":"{\"n\":0}","schema":1}' http://graft/v1/actors/greeter/state
//
// Upgrades are served by an Upgrader that the wiring in cmd/graft passes in
// (this package does not import the upgrade machinery); without one the
// upgrade and rollback endpoints answer 501 "not_implemented".
//
// Client is the typed Go client of all of the above.
package control
