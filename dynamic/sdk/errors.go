package sdk

import (
	"errors"
	"fmt"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// TerminalError is a handler's refusal of a request: "insufficient funds",
// "no such order". Unlike a plain error (a failure, retried and in the end
// dead-lettered), a refusal is the message's outcome. The state and the
// sends the handler returned with it commit with it, the caller gets the
// error instead of a reply (`graft call` exits non-zero, a Context.Call gets
// a *RefusedError), a retry with the same id gets the same refusal, and the
// message is never retried.
type TerminalError struct {
	// Err is the reason; its text is what the caller sees.
	Err error
}

// Error returns the reason's text, unchanged.
func (e *TerminalError) Error() string { return e.Err.Error() }

// Unwrap returns the reason, so errors.Is and errors.As see through.
func (e *TerminalError) Unwrap() error { return e.Err }

// Terminal marks err as a refusal of the request rather than a failure to
// handle it: `return s, sdk.Terminal(err)`. Terminal(nil) is nil.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &TerminalError{Err: err}
}

// Refuse is Terminal(fmt.Errorf(format, args...)).
func Refuse(format string, args ...any) error {
	return Terminal(fmt.Errorf(format, args...))
}

// refusal returns the text of err when it is a refusal.
func refusal(err error) (string, bool) {
	var te *TerminalError
	if !errors.As(err, &te) {
		return "", false
	}
	text := err.Error()
	if text == "" {
		text = "refused (with an empty reason)"
	}
	return text, true
}

// Kinds of failed calls, matched with errors.Is on the error Context.Call
// returns. The host classifies the failure; the text that comes with it
// (kept in the *CallError) says the details.
var (
	// ErrCallCycle: the call would close a cycle of synchronous calls
	// (a calls b calls a) and was refused at once instead of deadlocking.
	ErrCallCycle = errors.New("the call would close a cycle of calls")
	// ErrUnknownActor: no actor has that name.
	ErrUnknownActor = errors.New("unknown actor")
	// ErrCallTimeout: no reply within the behaviour's call timeout. The
	// request stays queued and is applied once; the redelivered message
	// re-asks and gets the stored answer.
	ErrCallTimeout = errors.New("no reply within the call timeout")
	// ErrTooLarge: the request or its reply is over the message size limit.
	ErrTooLarge = errors.New("over the message size limit")
	// ErrDeadLettered: the request failed too often and was dead-lettered.
	ErrDeadLettered = errors.New("the request was dead-lettered")
	// ErrNoReply: the called handler committed the request without replying.
	ErrNoReply = errors.New("the handler did not reply")
)

// CallError is a Context.Call that failed for a reason other than a
// refusal. errors.Is(err, ErrCallCycle) (and the other kinds) match Kind.
type CallError struct {
	// To is the called actor.
	To string
	// Kind is one of the Err* kinds above, or nil for any other failure
	// (the host is shutting down, the store failed).
	Kind error
	// Detail is the host's description of the failure.
	Detail string
}

// Error says which call failed and why.
func (e *CallError) Error() string { return "call " + e.To + ": " + e.Detail }

// Unwrap returns Kind.
func (e *CallError) Unwrap() error { return e.Kind }

// RefusedError is what Context.Call returns when the called actor's handler
// refused the request with a terminal error. Reason is its text, intact.
type RefusedError struct {
	// Actor is the called actor.
	Actor string
	// Reason is the refusal's text, as the called handler wrote it.
	Reason string
}

// Error names the actor and its reason.
func (e *RefusedError) Error() string { return e.Actor + " refused: " + e.Reason }

// callError turns the host's answer to a failed call into the error a
// handler can match.
func callError(to string, kind graftv1.CallErrorKind, detail string) error {
	var k error
	switch kind {
	case graftv1.CallErrorKind_CALL_ERROR_KIND_REFUSED:
		return &RefusedError{Actor: to, Reason: detail}
	case graftv1.CallErrorKind_CALL_ERROR_KIND_CYCLE:
		k = ErrCallCycle
	case graftv1.CallErrorKind_CALL_ERROR_KIND_UNKNOWN_ACTOR:
		k = ErrUnknownActor
	case graftv1.CallErrorKind_CALL_ERROR_KIND_TIMEOUT:
		k = ErrCallTimeout
	case graftv1.CallErrorKind_CALL_ERROR_KIND_TOO_LARGE:
		k = ErrTooLarge
	case graftv1.CallErrorKind_CALL_ERROR_KIND_DEAD_LETTERED:
		k = ErrDeadLettered
	case graftv1.CallErrorKind_CALL_ERROR_KIND_NO_REPLY:
		k = ErrNoReply
	}
	return &CallError{To: to, Kind: k, Detail: detail}
}

// PanicError is a panic in a handler, an Init or a migration step, turned
// into that call's failure (the plugin keeps serving).
type PanicError struct {
	// In names what panicked: "Handle", "Init", "Migrate".
	In string
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

// Error says what panicked, with the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("panic in %s: %v", e.In, e.Value) }
