package sdk

import (
	"context"
	"runtime/debug"
)

// Outcome is what one Handle of one message produced.
type Outcome[S any] struct {
	// State is the state after the message. After a failure (Err set and
	// not a refusal) it is the state handed in: nothing of the message
	// takes effect.
	State S
	// Sends are the messages the handler sent (none after a failure).
	Sends []Send
	// Timers are the timers the handler set with SendAfter and SendAt, in
	// order, less those it cancelled itself (none after a failure).
	Timers []Timer
	// CancelledTimers are the ids of earlier timers the handler cancelled
	// with CancelTimer, each once (none after a failure).
	CancelledTimers []string
	// Spawns are the actors the handler asked to create (none after a
	// failure).
	Spawns []Spawn
	// Reply is the handler's reply, if HasReply.
	Reply    []byte
	HasReply bool
	// Err is nil on success; a *TerminalError when the handler refused the
	// request (State and Sends then commit, the caller gets Err); anything
	// else, including a *PanicError, is a failure the core retries.
	Err error
}

// Refused reports whether the outcome is a refusal, and its text.
func (o Outcome[S]) Refused() (string, bool) { return refusal(o.Err) }

// Apply runs b's Handle on one message exactly as a plugin does: a panic
// becomes a *PanicError, a failure drops the message's effects, a refusal
// keeps them. Timers, cancels and spawns that the core would refuse (too
// many, or naming no actor; see Context.SendAfter) fail the message.
// calls answers Context.Call (nil: calls fail with ErrNoHost).
// Plugins use it through Serve; sdktest uses it to run handlers in a plain
// go test. A handler that mutates a map or pointer of its input state in
// place and then fails leaves that mutation visible in Outcome.State; the
// plugin server guards against it by re-decoding the last good encoding.
func Apply[S any](ctx context.Context, b Behaviour[S], actor string, state S, msg Message, calls Caller) Outcome[S] {
	hc := &Context{Context: ctx, actor: actor, msg: &msg, caller: calls}
	next, err := protect("Handle", func() (S, error) { return b.Handle(hc, state, msg) })
	if _, refused := refusal(err); err == nil || refused {
		if cerr := hc.checkDeferred(); cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		if _, ok := refusal(err); !ok {
			return Outcome[S]{State: state, Err: err}
		}
	}
	return Outcome[S]{State: next, Sends: hc.out, Reply: hc.reply, HasReply: hc.hasReply,
		Timers: hc.timers, CancelledTimers: hc.cancels, Spawns: hc.spawns, Err: err}
}

// ApplyInit runs b's Init for actor the way a plugin does (a panic becomes
// a *PanicError; a timer or spawn, which only Handle may make, an error).
func ApplyInit[S any](ctx context.Context, b Behaviour[S], actor string) (S, error) {
	ic := &Context{Context: ctx, actor: actor}
	s, err := protect("Init", func() (S, error) { return b.Init(ic) })
	if err == nil {
		err = ic.checkInit()
	}
	return s, err
}

// protect runs f, turning a panic into a *PanicError.
func protect[T any](what string, f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{In: what, Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}
