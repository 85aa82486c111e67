// Package control is the graft core's control API: JSON over HTTP on a unix
// socket. Everything the `graft` command does goes through it, and it is
// documented here so that other tools can drive a core too (curl
// --unix-socket works). It stays responsive while actors start, hang or
// upgrade (guarantee G5): no handler waits on an actor, except send and call,
// which wait only on their own message, within their own deadline.
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
//	GET  /v1/history                           -> []UpgradeRecord, oldest first
//	POST /v1/behaviours/{behaviour}/upgrade    UpgradeRequest -> UpgradeRecord
//	POST /v1/behaviours/{behaviour}/rollback   -> UpgradeRecord
//
// For example:
//
//	curl --unix-socket run/graft.sock http://graft/v1/status
//	curl --unix-socket run/graft.sock -d '{"text":"hello","id":"m1"}' http://graft/v1/actors/greeter/call
//
// Upgrades are served by an Upgrader that the wiring in cmd/graft passes in
// (this package does not import the upgrade machinery); without one the
// upgrade and rollback endpoints answer 501 "not_implemented".
//
// Client is the typed Go client of all of the above.
package control
