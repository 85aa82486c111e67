package sdk_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// timerBehaviour runs f as a handler that also fails or refuses on request.
func timerBehaviour(f func(ctx *sdk.Context)) sdk.HandlerFunc[tally] {
	return func(ctx *sdk.Context, s tally, m sdk.Message) (tally, error) {
		f(ctx)
		s.N++
		switch string(m.Payload) {
		case "fail":
			return s, errors.New("failed")
		case "refuse":
			return s, sdk.Refuse("refused")
		}
		return s, nil
	}
}

// Timer ids derive from the actor, the message's seq and the timer's place
// in the handler: a redelivered message gets the same ids, another message
// or actor others. SendAfter keeps the delay, SendAt the absolute time.
func TestTimerIDsAreStableAcrossRedeliveries(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	var ids []string
	b := timerBehaviour(func(ctx *sdk.Context) {
		ids = append(ids, ctx.SendAfter(time.Minute, "b", []byte("x")), ctx.SendAt(at, "c", nil))
	})
	ctx := context.Background()
	first := sdk.Apply(ctx, b, "a", tally{}, sdk.Message{Seq: 7, ID: "m7", Attempt: 1}, nil)
	again := sdk.Apply(ctx, b, "a", tally{}, sdk.Message{Seq: 7, ID: "m7", Attempt: 2}, nil)
	other := sdk.Apply(ctx, b, "a", tally{}, sdk.Message{Seq: 8, ID: "m8"}, nil)
	elsewhere := sdk.Apply(ctx, b, "z", tally{}, sdk.Message{Seq: 7, ID: "m7"}, nil)
	if first.Err != nil || len(first.Timers) != 2 {
		t.Fatalf("first: %+v", first)
	}
	if ids[0] != first.Timers[0].ID || ids[1] != first.Timers[1].ID || ids[0] == ids[1] {
		t.Fatalf("the returned ids are the recorded ones, distinct: %v %+v", ids, first.Timers)
	}
	for i := range 2 {
		if again.Timers[i].ID != first.Timers[i].ID {
			t.Fatalf("a redelivery must derive the same id: %s vs %s", again.Timers[i].ID, first.Timers[i].ID)
		}
		if other.Timers[i].ID == first.Timers[i].ID || elsewhere.Timers[i].ID == first.Timers[i].ID {
			t.Fatalf("another message or actor must derive another id: %s", first.Timers[i].ID)
		}
	}
	t0, t1 := first.Timers[0], first.Timers[1]
	if t0.To != "b" || string(t0.Payload) != "x" || t0.After != time.Minute || !t0.At.IsZero() {
		t.Fatalf("SendAfter: %+v", t0)
	}
	if t1.To != "c" || t1.After != 0 || !t1.At.Equal(at) {
		t.Fatalf("SendAt: %+v", t1)
	}

	long := strings.Repeat("n", 5000)
	out := sdk.Apply(ctx, b, long, tally{}, sdk.Message{Seq: 1}, nil)
	if id := out.Timers[0].ID; len(id) > wire.MaxTimerID || strings.Contains(id, long[:200]) {
		t.Fatalf("a long actor name must be hashed into a bounded id: %d bytes", len(id))
	}
}

// A negative delay is due at once; times outside what int64 nanoseconds
// hold are clamped, never undefined.
func TestTimerDelaysAndTimesAreClamped(t *testing.T) {
	b := timerBehaviour(func(ctx *sdk.Context) {
		ctx.SendAfter(-time.Hour, "a", nil)
		ctx.SendAt(time.Time{}, "a", nil)
		ctx.SendAt(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "a", nil)
	})
	out := sdk.Apply(context.Background(), b, "a", tally{}, sdk.Message{Seq: 1}, nil)
	if out.Err != nil || len(out.Timers) != 3 {
		t.Fatalf("%+v", out)
	}
	if out.Timers[0].After != 0 || !out.Timers[0].At.IsZero() {
		t.Fatalf("a negative delay is a zero delay: %+v", out.Timers[0])
	}
	if out.Timers[1].At.IsZero() || out.Timers[1].At.Year() != 1677 {
		t.Fatalf("the zero time is clamped to the earliest time, which is still absolute: %v", out.Timers[1].At)
	}
	if out.Timers[2].At.Year() != 2262 {
		t.Fatalf("a far time is clamped to the latest: %v", out.Timers[2].At)
	}
}

// CancelTimer of a timer set in the same handler unsets it; of an earlier
// one, records it once; of an id that cannot be a timer's, does nothing.
// Cancelled timers still count, so later ids do not move.
func TestCancelTimer(t *testing.T) {
	var kept string
	b := timerBehaviour(func(ctx *sdk.Context) {
		ctx.CancelTimer(ctx.SendAfter(time.Second, "a", nil))
		kept = ctx.SendAfter(time.Second, "a", nil)
		ctx.CancelTimer("t:a:1:1")
		ctx.CancelTimer("t:a:1:1")
		ctx.CancelTimer("")
		ctx.CancelTimer(strings.Repeat("x", wire.MaxTimerID+1))
	})
	out := sdk.Apply(context.Background(), b, "a", tally{}, sdk.Message{Seq: 2}, nil)
	if out.Err != nil || len(out.Timers) != 1 || out.Timers[0].ID != kept || !strings.HasSuffix(kept, ":2") {
		t.Fatalf("timers: %+v (kept %s)", out.Timers, kept)
	}
	if len(out.CancelledTimers) != 1 || out.CancelledTimers[0] != "t:a:1:1" {
		t.Fatalf("cancels: %q", out.CancelledTimers)
	}
}

// Timers, cancels and spawns are effects: a failure drops them, a refusal
// keeps them.
func TestTimersAndSpawnsFollowTheOutcome(t *testing.T) {
	b := timerBehaviour(func(ctx *sdk.Context) {
		ctx.SendAfter(time.Second, "a", nil)
		ctx.CancelTimer("t:a:1:1")
		ctx.Spawn("order/1", "order", []byte("init"))
	})
	ctx := context.Background()
	out := sdk.Apply(ctx, b, "a", tally{}, sdk.Message{Seq: 2, Payload: []byte("fail")}, nil)
	if out.Err == nil || len(out.Timers)+len(out.CancelledTimers)+len(out.Spawns) != 0 {
		t.Fatalf("a failure has no effects: %+v", out)
	}
	out = sdk.Apply(ctx, b, "a", tally{}, sdk.Message{Seq: 2, Payload: []byte("refuse")}, nil)
	if _, refused := out.Refused(); !refused || len(out.Timers) != 1 || len(out.CancelledTimers) != 1 || len(out.Spawns) != 1 {
		t.Fatalf("a refusal keeps its effects: %+v", out)
	}
	if s := out.Spawns[0]; s.Name != "order/1" || s.Behaviour != "order" || string(s.Init) != "init" {
		t.Fatalf("spawn: %+v", s)
	}
}

// What the core would refuse fails the message in the plugin, with an
// error that says what: too many timers, cancels or spawns, a timer to
// nobody, a spawn without a name or behaviour, one name spawned as two
// behaviours. A refusal does not hide it.
func TestMalformedTimersAndSpawnsFailTheMessage(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		f          func(ctx *sdk.Context)
	}{
		{"too many timers", "set 1001 timers, over the limit of 1000", func(ctx *sdk.Context) {
			for range wire.MaxTimersPerMessage + 1 {
				ctx.SendAfter(0, "a", nil)
			}
		}},
		{"too many cancels", "cancelled 1001 timers, over the limit of 1000", func(ctx *sdk.Context) {
			for i := range wire.MaxCancelsPerMessage + 1 {
				ctx.CancelTimer("t:a:1:" + strconv.Itoa(i))
			}
		}},
		{"too many spawns", "spawned 1001 actors, over the limit of 1000", func(ctx *sdk.Context) {
			for range wire.MaxSpawnsPerMessage + 1 {
				ctx.Spawn("x", "b", nil)
			}
		}},
		{"timer to nobody", "names no actor", func(ctx *sdk.Context) { ctx.SendAfter(0, "", nil) }},
		{"spawn without a behaviour", "needs an actor name and a behaviour", func(ctx *sdk.Context) { ctx.Spawn("x", "", nil) }},
		{"spawn without a name", "needs an actor name and a behaviour", func(ctx *sdk.Context) { ctx.Spawn("", "b", nil) }},
		{"two behaviours", `spawns actor "x" twice, with behaviours "b" and "c"`, func(ctx *sdk.Context) {
			ctx.Spawn("x", "b", nil)
			ctx.Spawn("x", "c", nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, payload := range []string{"ok", "refuse"} {
				out := sdk.Apply(context.Background(), timerBehaviour(tc.f), "a", tally{N: 5}, sdk.Message{Seq: 1, Payload: []byte(payload)}, nil)
				if _, refused := out.Refused(); out.Err == nil || refused || !strings.Contains(out.Err.Error(), tc.want) {
					t.Fatalf("%s: want a failure saying %q, got %v", payload, tc.want, out.Err)
				}
				if out.State.N != 5 || len(out.Timers)+len(out.Spawns)+len(out.CancelledTimers) != 0 {
					t.Fatalf("a failure has no effect: %+v", out)
				}
			}
		})
	}
	same := timerBehaviour(func(ctx *sdk.Context) { ctx.Spawn("x", "b", nil); ctx.Spawn("x", "b", nil) })
	if out := sdk.Apply(context.Background(), same, "a", tally{}, sdk.Message{Seq: 1}, nil); out.Err != nil {
		t.Fatalf("spawning one name twice as one behaviour is allowed (the second is a no-op): %v", out.Err)
	}
}

// Init commits only the state: a timer or spawn made there fails it
// rather than vanish.
func TestTimersAndSpawnsInInitFail(t *testing.T) {
	b := sdk.Funcs[tally]{
		InitFunc: func(ctx *sdk.Context) (tally, error) {
			if id := ctx.SendAfter(time.Second, "a", nil); id != "" {
				t.Errorf("a timer set in Init has no id, got %q", id)
			}
			ctx.Spawn("x", "b", nil)
			ctx.SendAt(time.Now(), "a", nil)
			return tally{}, nil
		},
		HandleFunc: func(ctx *sdk.Context, s tally, m sdk.Message) (tally, error) { return s, nil },
	}
	_, err := sdk.ApplyInit(context.Background(), b, "a")
	if err == nil || !strings.Contains(err.Error(), "SendAfter, Spawn, SendAt in Init: timers and spawns are only allowed in Handle") {
		t.Fatalf("got %v", err)
	}
}

// A handler tells a timer's message from others by Context.TimerID.
func TestTimerIDOfTheMessage(t *testing.T) {
	var got []string
	b := sdk.HandlerFunc[tally](func(ctx *sdk.Context, s tally, m sdk.Message) (tally, error) {
		got = append(got, ctx.TimerID(), m.TimerID)
		return s, nil
	})
	sdk.Apply(context.Background(), b, "a", tally{}, sdk.Message{Seq: 1, TimerID: "t:a:0:1"}, nil)
	sdk.Apply(context.Background(), b, "a", tally{}, sdk.Message{Seq: 2}, nil)
	if strings.Join(got, ",") != "t:a:0:1,t:a:0:1,," {
		t.Fatalf("got %q", got)
	}
}
