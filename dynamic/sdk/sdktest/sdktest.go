// Package sdktest runs a graft behaviour's handlers in a plain `go test`,
// with no core and no plugin process: give a handler a state and a message
// and look at what it did (new state, sends, reply, refusal, timers set and
// cancelled, actors spawned), with the answers to its calls stubbed. Fire
// plays a timer the handler set back to it, as the core does when it comes
// due (no clock is involved: the test decides when). It runs them through the same code as a
// plugin does (sdk.Apply: panics become errors, failures drop their effects,
// refusals keep them), and passes the state through the codec between
// messages as the core does, so an encoding bug shows up here too.
//
//	h := sdktest.New(behaviour).Stub("bank", func(p []byte) ([]byte, error) {
//		return []byte("ok"), nil
//	})
//	out := h.Handle(state, "withdraw 5")
//	if out.Err != nil { ... }
package sdktest

import (
	"context"
	"fmt"
	"strconv"

	"github.com/graft-host/graft/dynamic/sdk"
)

// StubFunc answers a call to one actor. Return a *sdk.RefusedError to play
// a refusal, or a *sdk.CallError with a kind (sdk.ErrCallTimeout...) to play
// a failure.
type StubFunc func(payload []byte) ([]byte, error)

// Harness holds one behaviour, the actor it plays and the stubs for the
// actors it calls. It is not safe for concurrent use.
type Harness[S any] struct {
	b     sdk.Behaviour[S]
	codec *sdk.Codec[S]
	actor string
	stubs map[string]StubFunc
	calls []sdk.CallRequest
	seq   uint64
}

// New returns a harness for b playing actor "test", with the default codec
// (JSON at schema 1, as sdk.Run uses).
func New[S any](b sdk.Behaviour[S]) *Harness[S] {
	return &Harness[S]{b: b, codec: sdk.JSONCodec[S](1), actor: "test", stubs: map[string]StubFunc{}}
}

// WithCodec makes the harness encode and decode states with c, as the
// module does when it is given one.
func (h *Harness[S]) WithCodec(c *sdk.Codec[S]) *Harness[S] {
	h.codec = c
	return h
}

// As sets the name of the actor the behaviour plays (Context.Actor).
func (h *Harness[S]) As(actor string) *Harness[S] {
	h.actor = actor
	return h
}

// Stub answers calls to actor with f. A call to an actor without a stub
// fails with sdk.ErrUnknownActor, as it would in a core without it.
func (h *Harness[S]) Stub(actor string, f StubFunc) *Harness[S] {
	h.stubs[actor] = f
	return h
}

// Calls lists every call the handlers made, in order.
func (h *Harness[S]) Calls() []sdk.CallRequest { return h.calls }

// Init runs the behaviour's Init and returns the state, as encoded and
// decoded by the codec.
func (h *Harness[S]) Init() (S, error) {
	s, err := sdk.ApplyInit(context.Background(), h.b, h.actor)
	if err != nil {
		return s, fmt.Errorf("init %s: %w", h.actor, err)
	}
	return h.through(s)
}

// Option sets a field of the message Handle delivers.
type Option func(*sdk.Message)

// From sets the message's sender.
func From(sender string) Option { return func(m *sdk.Message) { m.Sender = sender } }

// WithID sets the message's idempotency id (default "m" + its seq).
func WithID(id string) Option { return func(m *sdk.Message) { m.ID = id } }

// Attempt sets the delivery attempt (default 1).
func Attempt(n uint32) Option { return func(m *sdk.Message) { m.Attempt = n } }

// FromTimer marks the message as delivered by the timer with id
// (Message.TimerID), as Fire does.
func FromTimer(id string) Option { return func(m *sdk.Message) { m.TimerID = id } }

// InTrace sets the message's W3C traceparent (Message.TraceParent), as a
// core that traces sets it; the calls the handler makes carry it.
func InTrace(traceparent string) Option { return func(m *sdk.Message) { m.TraceParent = traceparent } }

// Fire delivers timer t, one the handler set (Outcome.Timers), to the
// behaviour in state, as the core does when it comes due: its payload,
// with Message.TimerID set to its id. The test decides when: Fire ignores
// t.After and t.At. A timer addressed to an actor other than the one the
// harness plays fails with an error saying so.
func (h *Harness[S]) Fire(state S, t sdk.Timer, opts ...Option) sdk.Outcome[S] {
	if t.To != h.actor {
		return sdk.Outcome[S]{State: state, Err: fmt.Errorf("timer %s is for actor %q, but the harness plays %q (see As)", t.ID, t.To, h.actor)}
	}
	return h.HandleBytes(state, t.Payload, append([]Option{FromTimer(t.ID)}, opts...)...)
}

// Handle delivers payload to the behaviour in state and returns what the
// handler did. The returned State has been through the codec, as the next
// message would see it; a codec failure is the outcome's Err. Messages get
// increasing sequence numbers.
func (h *Harness[S]) Handle(state S, payload string, opts ...Option) sdk.Outcome[S] {
	return h.HandleBytes(state, []byte(payload), opts...)
}

// HandleBytes is Handle for a binary payload.
func (h *Harness[S]) HandleBytes(state S, payload []byte, opts ...Option) sdk.Outcome[S] {
	h.seq++
	msg := sdk.Message{Seq: h.seq, ID: "m" + strconv.FormatUint(h.seq, 10), Payload: payload, Attempt: 1}
	for _, o := range opts {
		o(&msg)
	}
	in, err := h.through(state)
	if err != nil {
		return sdk.Outcome[S]{State: state, Err: err}
	}
	out := sdk.Apply(context.Background(), h.b, h.actor, in, msg, stubs[S]{h})
	if _, refused := out.Refused(); out.Err == nil || refused {
		next, err := h.through(out.State)
		if err != nil {
			return sdk.Outcome[S]{State: in, Err: err}
		}
		out.State = next
	}
	return out
}

// through encodes and decodes s with the codec, as the core's storage of
// it between two messages does.
func (h *Harness[S]) through(s S) (S, error) {
	b, err := h.codec.Encode(s)
	if err != nil {
		return s, fmt.Errorf("encode the state of %s: %w", h.actor, err)
	}
	out, err := h.codec.Decode(h.codec.Version(), b)
	if err != nil {
		return s, fmt.Errorf("decode the state of %s (%s): %w", h.actor, b, err)
	}
	return out, nil
}

// stubs is the harness as an sdk.Caller.
type stubs[S any] struct{ h *Harness[S] }

func (s stubs[S]) Call(_ context.Context, req sdk.CallRequest) ([]byte, error) {
	s.h.calls = append(s.h.calls, req)
	f, ok := s.h.stubs[req.To]
	if !ok {
		return nil, &sdk.CallError{To: req.To, Kind: sdk.ErrUnknownActor,
			Detail: fmt.Sprintf("no actor %q (the test stubs none: use Harness.Stub)", req.To)}
	}
	return f(req.Payload)
}
