package api

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoCore is wrapped by a Client's errors when nothing answers on the
// socket, so the CLI can tell the operator to start a core.
var ErrNoCore = errors.New("no graft core is running")

// NoCoreError names the socket where no core answered.
type NoCoreError struct {
	Socket string
	Err    error
}

// Error says what to do about it.
func (e *NoCoreError) Error() string {
	return fmt.Sprintf("no core is running on %s: start one with `graft run --config FILE`", e.Socket)
}

// Unwrap exposes ErrNoCore and the dial error.
func (e *NoCoreError) Unwrap() []error { return []error{ErrNoCore, e.Err} }

// APIError is an error answered by the core, with its HTTP status and code
// (one of the Code constants), so a caller can branch on the code.
type APIError struct {
	Status int
	Code   string
	Msg    string
}

// Error is the core's message.
func (e *APIError) Error() string { return e.Msg }

// RefusedError is what Client.Call returns when the handler refused the
// request with a terminal error (sdk.Terminal): the message was applied,
// its state and sends committed, and Reason is the handler's text. A retry
// with the same id gets the same RefusedError. It is the client's own type
// (the core's is core.RefusedError, with the same text) so that a client
// links nothing of the core; `graft call` exits 3 on it.
type RefusedError struct {
	Actor, ID string
	Reason    string
}

// Error names the actor and the id, then the reason.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("actor %q refused message %q: %s", e.Actor, e.ID, e.Reason)
}

// checkActorName refuses, before anything is sent, a name no actor can
// have: empty, over 255 bytes, or with a control character. Sent as a
// path, such a name would name another endpoint or none. It is the rule
// and the wording of mailbox.CheckActorName, which the store applies (this
// package links no store; a test of the server side holds the two equal).
func checkActorName(name string) error {
	if name == "" {
		return errors.New("actor name is empty: give every actor a name")
	}
	if len(name) > 255 {
		return fmt.Errorf("actor name %.32q... is %d bytes, over 255: invalid actor name", name, len(name))
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return fmt.Errorf("actor name %q has a control character at byte %d: invalid actor name", name, i)
	}
	return nil
}
