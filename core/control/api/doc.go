// Package api is the graft core's control API as its clients see it: the
// JSON wire types, the error codes and Client, the typed Go client. It
// imports nothing of graft and links no go-plugin, gRPC or store (a rule
// of internal/layering checks its transitive dependencies), so a program
// that only talks to a running core (the `graft` commands, a deploy
// script, a monitor) stays small. The server is package core/control,
// which serves these types.
//
// The API is JSON over HTTP on a unix socket; everything the `graft`
// command does goes through it, and it is documented here so that other
// tools can drive a core too (curl --unix-socket works).
//
// # Protocol
//
// Requests and responses are JSON (Content-Type: application/json). Byte
// strings (payloads, replies) are base64, as encoding/json writes []byte; a
// request may give "text" (UTF-8) instead of "payload". Every response uses
// one style: snake_case field names, durations in seconds as numbers (names
// ending in _seconds) and times in RFC 3339. Every error is a non-2xx
// status with the body {"error": "what went wrong and what to do", "code":
// "not_found" | "bad_request" | "too_large" | "disk_full" | "id_reused" |
// "timeout" | "no_reply" | "conflict" | "spawn_conflict" | "unavailable" |
// "not_implemented" | "internal"} (ErrorBody; the Code constants).
//
// # Endpoints (version 1)
//
//	GET  /v1/core                              CoreInfo: pid, socket, config, start time
//	GET  /v1/status                            Status: CoreInfo and one ActorStatus per actor
//	POST /v1/actors/{actor}/send               SendRequest -> SendResponse (durable once 200)
//	POST /v1/actors/{actor}/call               CallRequest -> CallResponse (the reply)
//	POST /v1/actors/{actor}/spawn              SpawnRequest -> SpawnResponse (created, or already there)
//	POST /v1/actors/{actor}/stop               -> ActorResponse (stays stopped until start or the core's restart; mailbox and state kept)
//	POST /v1/actors/{actor}/start              -> ActorResponse
//	POST /v1/actors/{actor}/destroy            -> ActorResponse (removed for good, data and all)
//	GET  /v1/actors/{actor}/timers             -> []Timer, earliest first
//	GET  /v1/actors/{actor}/deadletters        -> []DeadLetter, oldest first
//	GET  /v1/actors/{actor}/messages           -> Messages: the first waiting, the last handled (payloads cut to PayloadPreview)
//	POST /v1/actors/{actor}/deadletters/retry  RetryRequest -> RetryResponse
//	GET  /v1/actors/{actor}/state              -> StateResponse (the committed state)
//	PUT  /v1/actors/{actor}/state              StateRequest -> RepairResponse (replace it)
//	POST /v1/actors/{actor}/state/reset        -> RepairResponse (clear it: Init runs next)
//	GET  /v1/history                           -> []UpgradeRecord, oldest first (a cluster op once, with its members)
//	POST /v1/behaviours/{behaviour}/upgrade    UpgradeRequest -> UpgradeRecord
//	POST /v1/behaviours/{behaviour}/dry-run    DryRunRequest -> DryRunReport
//	POST /v1/behaviours/{behaviour}/rollback   -> UpgradeRecord
//	POST /v1/behaviours/{behaviour}/promote    -> DecisionResponse (end a canary's bake: move the rest)
//	POST /v1/behaviours/{behaviour}/abort      -> DecisionResponse (end it: roll the canary back)
//	GET  /v1/upgrades                          -> []UpgradeProgress (upgrades, rollbacks, dry runs running)
//
// A request may carry a W3C "traceparent" header: the sends, calls and
// upgrades it makes are then spans of that trace, when the core traces
// (OTEL_* environment); an invalid one is ignored.
//
// {actor} is one path segment, percent-encoded (url.PathEscape, with "."
// and ".." written %2E and %2E%2E, which path cleaning would otherwise
// resolve): an actor name is 1 to 255 bytes with no control characters,
// so "account/alice" is account%2Falice, and ".", "..", spaces and
// non-ASCII letters are all valid names. A message id (send, call) is at
// most 256 bytes; a longer one is refused with bad_request before
// anything is enqueued.
//
// A send with "after_seconds" (a number, 0 or more) or "at" (RFC 3339),
// not both, sets a durable timer instead of enqueueing at once: it answers
// outcome "scheduled" with "timer_id" and "due", and the message is
// delivered once at that time, with its timer id, like a timer a handler
// set. A timer has its own id, so "id" goes with neither (bad_request).
//
// Spawn creates an actor at run time: {"behaviour": B} and optionally its
// first message ("init", base64, or "init_text"), queued in the same write.
// A name that exists with the same behaviour is left as it is ("created":
// false, no message queued); with another behaviour it is refused with 409
// spawn_conflict, naming both. An unknown behaviour or an invalid name is
// 400 bad_request. Destroy removes an actor for good (its registry entry,
// mailbox, state, replies, idempotency window, dead letters and the timers
// it set); calls waiting on it fail; stop is the one that keeps its data.
//
// An upgrade answers when it ends. With "canary" (and "bake_seconds") it
// moves that share or those actors first, bakes, and answers once it has
// promoted or rolled back, which can be long after the request: a client
// that stops waiting does not end the bake (promote and abort do, and
// GET /v1/upgrades shows its phase and time left). A canary that was
// rolled back answers 409 conflict with the numbers that decided.
//
// A call the handler refused (its terminal error) answers 200 with
// "refused": true and the handler's text in "error"; Client.Call returns
// it as a *RefusedError. A send or call whose answer never came (the core
// was killed, the connection dropped) may or may not be durable: Client
// returns an *UncertainError, which says whether a retry is safe.
//
// For example:
//
//	curl --unix-socket run/graft.sock http://graft/v1/status
//	curl --unix-socket run/graft.sock -d '{"text":"hello","id":"m1"}' http://graft/v1/actors/greeter/call
//	curl --unix-socket run/graft.sock -d '{"behaviour":"account"}' http://graft/v1/actors/acct-7/spawn
//	curl --unix-socket run/graft.sock -d '{"text":"remind","after_seconds":30}' http://graft/v1/actors/greeter/send
//	curl --unix-socket run/graft.sock -X PUT -d '{"text":"{\"n\":0}","schema":1}' http://graft/v1/actors/greeter/state
package api
