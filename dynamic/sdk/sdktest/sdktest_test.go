package sdktest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
	"github.com/graft-host/graft/dynamic/sdk/sdktest"
)

type state struct {
	Seen []string `json:"seen"`
	lost int      // unexported: the codec drops it, as the core's storage would
}

func TestHarnessStubsCallsAndPassesStateThroughTheCodec(t *testing.T) {
	b := sdk.HandlerFunc[state](func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
		reply, err := ctx.Call("oracle", m.Payload)
		if err != nil {
			return s, err
		}
		s.Seen = append(s.Seen, string(reply))
		s.lost++
		ctx.Send(m.Sender, reply)
		return s, nil
	})
	h := sdktest.New(b).As("asker").Stub("oracle", func(p []byte) ([]byte, error) {
		return []byte("yes to " + string(p)), nil
	})
	out := h.Handle(state{}, "q1", sdktest.From("client-7"))
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	if len(out.Sends) != 1 || out.Sends[0].To != "client-7" || string(out.Sends[0].Payload) != "yes to q1" {
		t.Fatalf("sends: %+v", out.Sends)
	}
	if out.State.lost != 0 {
		t.Fatal("the state must go through the codec, which drops unexported fields")
	}
	calls := h.Calls()
	if len(calls) != 1 || calls[0].From != "asker" || calls[0].ID != "asker/m1/call/1" {
		t.Fatalf("calls: %+v", calls)
	}

	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if out = h.Handle(state{}, "q2", sdktest.InTrace(tp)); out.Err != nil {
		t.Fatal(out.Err)
	}
	if calls := h.Calls(); calls[0].TraceParent != "" || calls[1].TraceParent != tp {
		t.Fatalf("a call carries the calling message's trace, and only it: %+v", calls)
	}

	h2 := sdktest.New(b)
	out = h2.Handle(state{}, "q")
	if !errors.Is(out.Err, sdk.ErrUnknownActor) {
		t.Fatalf("a call to an unstubbed actor fails as unknown: %v", out.Err)
	}
}

type v1 struct {
	N int `json:"n"`
}
type v2 struct {
	Count int `json:"count"`
}

func TestRoundTripCatchesALossyDownStep(t *testing.T) {
	good := sdk.JSONCodec[v2](2).
		Up(1, sdk.JSONStep(func(o v1) (v2, error) { return v2{Count: o.N}, nil })).
		Down(2, sdk.JSONStep(func(n v2) (v1, error) { return v1{N: n.Count}, nil }))
	if _, err := sdktest.RoundTrip(good, 1, []byte(`{ "n": 3 }`)); err != nil {
		t.Fatalf("a faithful pair of steps round-trips: %v", err)
	}
	lossy := sdk.JSONCodec[v2](2).
		Up(1, sdk.JSONStep(func(o v1) (v2, error) { return v2{Count: o.N}, nil })).
		Down(2, sdk.JSONStep(func(n v2) (v1, error) { return v1{}, nil }))
	_, err := sdktest.RoundTrip(lossy, 1, []byte(`{"n":3}`))
	if err == nil || !strings.Contains(err.Error(), "changes the state") {
		t.Fatalf("a lossy down step must fail the round trip: %v", err)
	}
	noDown := sdk.JSONCodec[v2](2).Up(1, sdk.JSONStep(func(o v1) (v2, error) { return v2{Count: o.N}, nil }))
	if _, err := sdktest.RoundTrip(noDown, 1, []byte(`{"n":3}`)); !errors.Is(err, sdk.ErrNoMigration) {
		t.Fatalf("a missing down step is ErrNoMigration: %v", err)
	}
}

// The harness records each message's timers, cancels and spawns, and Fire
// plays a timer back with its id, as the core does when it comes due.
func TestHarnessRecordsTimersAndSpawns(t *testing.T) {
	b := sdk.HandlerFunc[state](func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
		switch {
		case ctx.TimerID() != "":
			s.Seen = append(s.Seen, "fired "+ctx.TimerID()+" "+string(m.Payload))
		case string(m.Payload) == "arm":
			ctx.SendAfter(time.Minute, ctx.Actor(), []byte("wake"))
			ctx.Spawn("helper/1", "helper", []byte("hello"))
		case string(m.Payload) == "disarm":
			ctx.CancelTimer(s.Seen[0][len("armed "):])
		}
		return s, nil
	})
	h := sdktest.New(b).As("sleeper")
	out := h.Handle(state{}, "arm")
	if out.Err != nil || len(out.Timers) != 1 || len(out.Spawns) != 1 || len(out.CancelledTimers) != 0 {
		t.Fatalf("%+v", out)
	}
	tm := out.Timers[0]
	if tm.To != "sleeper" || tm.After != time.Minute || string(tm.Payload) != "wake" {
		t.Fatalf("timer: %+v", tm)
	}
	if sp := out.Spawns[0]; sp.Name != "helper/1" || sp.Behaviour != "helper" || string(sp.Init) != "hello" {
		t.Fatalf("spawn: %+v", sp)
	}
	fired := h.Fire(out.State, tm)
	if fired.Err != nil || len(fired.State.Seen) != 1 || fired.State.Seen[0] != "fired "+tm.ID+" wake" {
		t.Fatalf("fire: %+v", fired)
	}
	if len(fired.Timers)+len(fired.Spawns) != 0 {
		t.Fatalf("each outcome holds its own message's effects alone: %+v", fired)
	}
	out = h.Handle(state{Seen: []string{"armed " + tm.ID}}, "disarm")
	if len(out.CancelledTimers) != 1 || out.CancelledTimers[0] != tm.ID {
		t.Fatalf("cancel: %+v", out)
	}
	out = h.Handle(state{}, "x", sdktest.FromTimer("t:sleeper:1:1"))
	if out.State.Seen[0] != "fired t:sleeper:1:1 x" {
		t.Fatalf("FromTimer: %+v", out.State)
	}
	if out := h.Fire(state{}, sdk.Timer{ID: "t:x:1:1", To: "someone else"}); out.Err == nil || !strings.Contains(out.Err.Error(), `is for actor "someone else"`) {
		t.Fatalf("a timer for another actor: %v", out.Err)
	}
}
