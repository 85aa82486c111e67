package sdk_test

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
	"github.com/graft-host/graft/dynamic/sdk/sdktest"
)

// An echo behaviour: a whole plugin is `func main() { sdk.Run("echo",
// "1.0.0", echo) }`. Here sdktest runs its handler in process.
func Example_echo() {
	type state struct{ Count int }
	echo := sdk.HandlerFunc[state](func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
		s.Count++
		ctx.Reply(m.Payload)
		return s, nil
	})

	h := sdktest.New(echo)
	out := h.Handle(state{}, "hello")
	fmt.Printf("reply %q, count %d\n", out.Reply, out.State.Count)
	// Output: reply "hello", count 1
}

type account struct {
	Balance int `json:"balance"`
}

type deposit struct {
	Amount int `json:"amount"`
}

// A behaviour that routes messages by kind to typed handlers, and refuses
// what it cannot do with a terminal error: the caller gets the refusal, it
// is not retried, and the state returned with it commits.
func accountBehaviour() *sdk.Router[account] {
	return sdk.Routes[account]().
		On("deposit", sdk.JSON(func(ctx *sdk.Context, a account, d deposit) (account, error) {
			a.Balance += d.Amount
			ctx.ReplyText("balance %d", a.Balance)
			return a, nil
		})).
		On("withdraw", sdk.Text(func(ctx *sdk.Context, a account, args string) (account, error) {
			n, err := strconv.Atoi(args)
			if err != nil {
				return a, sdk.Refuse("withdraw wants a number, got %q", args)
			}
			if n > a.Balance {
				return a, sdk.Refuse("insufficient funds: balance %d, asked %d", a.Balance, n)
			}
			a.Balance -= n
			ctx.ReplyText("balance %d", a.Balance)
			return a, nil
		}))
}

// Testing a behaviour with sdktest: no core, no process.
func ExampleRouter() {
	h := sdktest.New(accountBehaviour())
	a, _ := h.Init()
	out := h.Handle(a, `{"kind":"deposit","amount":20}`)
	fmt.Printf("%s\n", out.Reply)

	out = h.Handle(out.State, "withdraw 500")
	var refusal *sdk.TerminalError
	fmt.Println(errors.As(out.Err, &refusal), out.Err)

	out = h.Handle(out.State, "close")
	fmt.Println(out.Err)
	// Output:
	// balance 20
	// true insufficient funds: balance 20, asked 500
	// unknown message kind "close" (this behaviour handles: deposit, withdraw)
}

// A state migration: version 2 of a behaviour turns a counter into a record,
// registers the step up from schema 1 and the step back down (for
// rollback), and sdktest.RoundTrip checks down(up(s)) == s.
func ExampleCodec_migration() {
	type counterV1 struct {
		N int `json:"n"`
	}
	type counterV2 struct {
		Count int    `json:"count"`
		Last  string `json:"last"`
	}
	codec := sdk.JSONCodec[counterV2](2).
		Up(1, sdk.JSONStep(func(o counterV1) (counterV2, error) { return counterV2{Count: o.N}, nil })).
		Down(2, sdk.JSONStep(func(n counterV2) (counterV1, error) { return counterV1{N: n.Count}, nil }))

	up, err := sdktest.RoundTrip(codec, 1, []byte(`{"n":7}`))
	fmt.Printf("%+v %v\n", up, err)
	// Output: {Count:7 Last:} <nil>
}

// A handler that calls another actor, with the answer stubbed in the test;
// the callee's refusal reaches the caller as a *sdk.RefusedError.
func ExampleContext_Call() {
	type state struct{}
	teller := sdk.HandlerFunc[state](func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
		reply, err := ctx.Call("vault", []byte("withdraw 5"))
		var refused *sdk.RefusedError
		switch {
		case errors.As(err, &refused):
			ctx.ReplyText("the vault said no: %s", refused.Reason)
		case err != nil:
			return s, err // a failure: retried later
		default:
			ctx.Reply(reply)
		}
		return s, nil
	})
	h := sdktest.New(teller).Stub("vault", func([]byte) ([]byte, error) {
		return nil, &sdk.RefusedError{Actor: "vault", Reason: "closed for the night"}
	})
	fmt.Printf("%s\n", h.Handle(state{}, "cash please").Reply)
	// Output: the vault said no: closed for the night
}

// Periodic work is a handler that re-arms its timer on each tick. The
// state keeps the pending tick's id, so "stop" can cancel it, and so that a
// tick that was already on its way when "stop" committed (cancelling a
// fired timer does nothing) is recognised as stale and ignored. In a test,
// Fire plays a tick whenever the test likes.
func ExampleContext_SendAfter() {
	type poller struct {
		Polls int    `json:"polls"`
		Tick  string `json:"tick"` // id of the pending tick, "" when stopped
	}
	const every = 30 * time.Second
	b := sdk.HandlerFunc[poller](func(ctx *sdk.Context, p poller, m sdk.Message) (poller, error) {
		switch {
		case ctx.TimerID() != "": // a tick
			if ctx.TimerID() != p.Tick {
				return p, nil // stale: stopped (or restarted) since it was set
			}
			p.Polls++ // ... the periodic work ...
			p.Tick = ctx.SendAfter(every, ctx.Actor(), []byte("tick"))
		case string(m.Payload) == "start" && p.Tick == "":
			p.Tick = ctx.SendAfter(every, ctx.Actor(), []byte("tick"))
		case string(m.Payload) == "stop":
			ctx.CancelTimer(p.Tick)
			p.Tick = ""
		}
		return p, nil
	})

	h := sdktest.New(b).As("poller")
	out := h.Handle(poller{}, "start")
	for range 3 {
		out = h.Fire(out.State, out.Timers[0])
	}
	fmt.Println(out.State.Polls, "polls; next tick in", out.Timers[0].After)
	pending := out.Timers[0]
	out = h.Handle(out.State, "stop")
	fmt.Println("cancelled the pending tick:", out.CancelledTimers[0] == pending.ID)
	out = h.Fire(out.State, pending) // had it fired before the stop
	fmt.Println(out.State.Polls, "polls, timers set:", len(out.Timers))
	// Output:
	// 3 polls; next tick in 30s
	// cancelled the pending tick: true
	// 3 polls, timers set: 0
}
