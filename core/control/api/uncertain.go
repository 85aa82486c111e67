package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ErrUncertain is matched (errors.Is) by a Client's errors when a send or
// call reached the core but no answer came back (the core was killed, the
// connection was reset, the deadline passed): the message may or may not
// be durable, and applied.
var ErrUncertain = errors.New("the message may or may not be durable")

// UncertainError is a send or call whose fate is unknown. Retrying it with
// the same message id is safe: the core enqueues an id at most once (and a
// call gets the stored reply). Without an id a retry may apply it twice.
type UncertainError struct {
	Op    string // "send" or "call"
	Actor string
	ID    string // the request's message id, "" if it had none
	// Scheduled says the send set a timer (send --after/--at): without
	// an id a retry may set it twice.
	Scheduled bool
	Socket    string
	Err       error // what the transport said
}

// Error says what is known and what to do.
func (e *UncertainError) Error() string {
	fate := "the message may or may not be durable"
	if e.Op == "call" {
		fate = "the message may or may not be durable, and applied"
	}
	retry := fmt.Sprintf("retrying with the same id (--id %s) is safe: the core enqueues an id at most once", e.ID)
	switch {
	case e.Scheduled && e.ID != "":
		fate = "the timer may or may not be set"
		retry = fmt.Sprintf("retrying with the same id (--id %s) is safe: the core sets one timer for an id while it is pending", e.ID)
	case e.Scheduled:
		fate = "the timer may or may not be set"
		retry = fmt.Sprintf("it had no id, so a retry may set it twice: look for it with `graft timers %s` before retrying, or schedule with an id (--id ID)", e.Actor)
	case e.ID == "":
		retry = "it had no id, so a retry may enqueue it twice: send with an id (--id ID) to make a retry safe"
	}
	cause := e.Err
	var ue *url.Error
	if errors.As(cause, &ue) {
		cause = ue.Err // not the request's URL, which names no real host
	}
	return fmt.Sprintf("%s to %q on %s: the core did not answer (%v): %s; %s", e.Op, e.Actor, e.Socket, cause, fate, retry)
}

// Unwrap exposes ErrUncertain and the transport error.
func (e *UncertainError) Unwrap() []error { return []error{ErrUncertain, e.Err} }

// uncertain returns an *UncertainError for a send or call whose request
// may have reached the core when err (from the HTTP round trip) came, or
// nil: a dial that failed never delivered anything.
func (c *Client) uncertain(method, path string, in any, err error) error {
	var op *net.OpError
	if method != http.MethodPost || (errors.As(err, &op) && op.Op == "dial") {
		return nil
	}
	rest, ok := strings.CutPrefix(path, "/v1/actors/")
	if !ok {
		return nil
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || (rest[i+1:] != "send" && rest[i+1:] != "call") {
		return nil
	}
	actor, perr := url.PathUnescape(rest[:i])
	if perr != nil {
		actor = rest[:i]
	}
	var id string
	var scheduled bool
	switch r := in.(type) {
	case SendRequest:
		id, scheduled = r.ID, r.Scheduled()
	case CallRequest:
		id = r.ID
	}
	return &UncertainError{Op: rest[i+1:], Actor: actor, ID: id, Scheduled: scheduled, Socket: c.socket, Err: err}
}
