// Package sdk is what a graft behaviour plugin imports: a typed state, a
// handler per kind of message, a codec that versions the state, and Run
// from main. The SDK is a Go module of its own
// (github.com/graft-host/graft/dynamic/sdk) that imports nothing from
// graft's core, so a behaviour lives in its author's repository and never
// depends on the core's internals. This is its version v0.2.0 (the module's
// tags are dynamic/sdk/vX.Y.Z; CHANGELOG.md says what each adds).
//
// State lives in the core, never in the plugin: every Handle gets the
// actor's state and returns the new one, and the core commits it with the
// message's effects (Send, Reply) in one transaction. Handlers must therefore
// be deterministic functions of (state, message) plus what they learn
// through Context.Call, since a message may be redelivered after a crash.
//
// A complete echo behaviour (go build it, and point graft at the binary):
//
//	package main
//
//	import "github.com/graft-host/graft/dynamic/sdk"
//
//	type state struct{ Count int }
//
//	func main() {
//		sdk.Run("echo", "1.0.0", sdk.HandlerFunc[state](func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
//			s.Count++
//			ctx.Reply(m.Payload) // answers `graft call`
//			return s, nil
//		}))
//	}
//
// Most behaviours speak a few kinds of message. Routes dispatches each
// message by its kind (KindOf: the first word of a text payload, or the
// "kind" field of a JSON object) to a handler; Text hands a handler the
// words after the kind, JSON decodes the payload into a typed request, and
// WithInit sets an actor's first state (the zero value otherwise):
//
//	sdk.Run("account", "1.0.0", sdk.Routes[account]().
//		On("deposit", sdk.JSON(deposit)).
//		On("withdraw", sdk.Text(withdraw)))
//
// # Errors
//
// A handler that returns a plain error (or panics) has failed: nothing of
// the message takes effect, and the core retries it, then dead-letters it
// after max_attempts. A handler that returns Terminal(err) (or Refuse) has
// refused the request: the refusal is the message's outcome, committed with
// the state and the sends the handler returned, given to the caller instead
// of a reply (graft call exits 3; a Context.Call gets a *RefusedError), and
// never retried. A message of a kind no route handles, or a payload that
// does not decode for JSON, is refused.
//
// A failed Context.Call says why in a form errors.Is and errors.As match:
// *RefusedError (the callee refused, its text intact), or a *CallError of
// kind ErrCallCycle, ErrUnknownActor, ErrCallTimeout, ErrTooLarge,
// ErrDeadLettered or ErrNoReply.
//
// # Timers and actors made at run time
//
// SendAfter(delay, to, payload) and SendAt(time, to, payload) set a durable
// timer and return its id; CancelTimer(id) cancels one. Spawn(name,
// behaviour, init) creates an actor. Like Send, they take effect in the
// same commit as the handler's new state, only if it succeeds (or refuses),
// and exactly once even when the message is redelivered: a redelivered
// handler derives the same timer ids, so it sets the same timers again
// rather than second ones. A timer's message reaches its actor as an
// ordinary message whose TimerID is the timer's id (Context.TimerID), even
// after a crash of the core. Periodic work is a handler that re-arms its
// timer on each tick (see the SendAfter example). Timers and spawns are for
// Handle only: Init commits nothing but the state, so making one there
// fails it. One message sets, cancels or spawns at most 1000 of each.
//
// # State versions
//
// Version 2 of a behaviour that changes its state type bumps the codec's
// version and registers the step up from 1 and the step back down (for
// rollback, like Erlang's {down, Vsn}):
//
//	codec := sdk.JSONCodec[stateV2](2).
//		Up(1, sdk.JSONStep(func(o stateV1) (stateV2, error) { return stateV2{Count: o.Count}, nil })).
//		Down(2, sdk.JSONStep(func(n stateV2) (stateV1, error) { return stateV1{Count: n.Count}, nil }))
//	sdk.Run("counter", "2.0.0", behaviour, sdk.WithCodec(codec))
//
// # Testing
//
// Package sdktest runs handlers in a plain go test through Apply, the same
// code a plugin runs them with, with Context.Call answered by stubs; each
// Outcome lists the message's sends, timers, cancels and spawns, and
// Harness.Fire plays a timer back; its
// RoundTrip checks a codec's down(up(s)) == s. The Example functions of this
// package are such tests.
//
// # The raw form
//
// Serve(Module{Name, Version, Codec, Behaviour}) is the long form Run
// wraps, for a Behaviour implemented as a type of its own.
//
// A panic in Init, Handle or a migration step becomes an error for that
// call alone (a *PanicError, with the stack written to the plugin's
// stderr, which the core logs); the plugin keeps serving. When the core
// process dies, however it dies, the plugin ends at once, and takes every
// process it started with it (Serve watches a pipe inherited from the
// core, and SIGTERM; it then kills its cgroup and its process group). What
// a handler writes on os.Stdout and os.Stderr reaches the core's log,
// rate-limited. Run by hand, a plugin says what it is and how to run it.
package sdk
