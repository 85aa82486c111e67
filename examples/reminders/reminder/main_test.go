package main

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
	"github.com/graft-host/graft/dynamic/sdk/sdktest"
)

const alice = "reminder/alice"

// start sends "every" to a fresh reminder and returns the outcome.
func start(t *testing.T, h *sdktest.Harness[state]) sdk.Outcome[state] {
	t.Helper()
	out := h.Handle(state{}, `{"kind":"every","seconds":2,"text":"stand up"}`)
	if out.Err != nil || len(out.Timers) != 1 {
		t.Fatalf("every: %+v", out)
	}
	return out
}

// "every" sets one timer to the actor itself, and each tick counts once and
// re-arms: a new timer, whose id the state keeps as the pending one.
func TestEachTickCountsAndRearms(t *testing.T) {
	h := sdktest.New(behaviour()).As(alice)
	out := start(t, h)
	tm := out.Timers[0]
	if tm.To != alice || tm.After != 2*time.Second || sdk.KindOf(tm.Payload) != "tick" {
		t.Fatalf("the timer: %+v", tm)
	}
	if out.State.Timer != tm.ID || out.State.Text != "stand up" {
		t.Fatalf("the state keeps the pending tick: %+v", out.State)
	}
	if got := status(t, out.Reply); got != out.State {
		t.Fatalf("every replies the status: %+v, want %+v", got, out.State)
	}

	seen := []string{tm.ID}
	for i := 1; i <= 3; i++ {
		out = h.Fire(out.State, out.Timers[0])
		if out.Err != nil || len(out.Timers) != 1 || len(out.CancelledTimers) != 0 {
			t.Fatalf("tick %d: %+v", i, out)
		}
		next := out.Timers[0]
		if slices.Contains(seen, next.ID) || next.After != 2*time.Second || next.To != alice {
			t.Fatalf("tick %d re-arms with a new timer: %+v (seen %v)", i, next, seen)
		}
		seen = append(seen, next.ID)
		if out.State.Count != i || out.State.Timer != next.ID {
			t.Fatalf("tick %d: state %+v", i, out.State)
		}
	}

	got := status(t, h.Handle(out.State, `{"kind":"status"}`).Reply)
	if got.Count != 3 || got.Timer != seen[3] {
		t.Fatalf("status: %+v, want count 3 and timer %s", got, seen[3])
	}
}

// "stop" cancels the pending tick; a tick that had already fired when the
// stop committed is ignored, and so is one of a replaced reminder.
func TestStopCancelsAndStaleTicksAreIgnored(t *testing.T) {
	h := sdktest.New(behaviour()).As(alice)
	out := start(t, h)
	out = h.Fire(out.State, out.Timers[0])
	pending := out.Timers[0]

	stopped := h.Handle(out.State, `{"kind":"stop"}`)
	if stopped.Err != nil || !slices.Equal(stopped.CancelledTimers, []string{pending.ID}) || len(stopped.Timers) != 0 {
		t.Fatalf("stop cancels the pending tick %s: %+v", pending.ID, stopped)
	}
	if stopped.State.Timer != "" || stopped.State.Count != 1 {
		t.Fatalf("stopped: %+v", stopped.State)
	}
	late := h.Fire(stopped.State, pending)
	if late.Err != nil || len(late.Timers) != 0 || late.State != stopped.State {
		t.Fatalf("a tick that fired before the stop changes nothing: %+v", late)
	}
	if again := h.Handle(stopped.State, `{"kind":"stop"}`); again.Err != nil || len(again.CancelledTimers) != 0 {
		t.Fatalf("stopping a stopped reminder cancels nothing: %+v", again)
	}

	// A new "every" replaces the running reminder: the old tick is
	// cancelled, the new period applies, the count carries on.
	restarted := h.Handle(stopped.State, `{"kind":"every","seconds":0.5,"text":"drink water"}`)
	old := restarted.State.Timer
	replaced := h.Handle(restarted.State, `{"kind":"every","seconds":60,"text":"stretch"}`)
	if !slices.Equal(replaced.CancelledTimers, []string{old}) || len(replaced.Timers) != 1 || replaced.Timers[0].After != time.Minute {
		t.Fatalf("every replaces the pending tick %s: %+v", old, replaced)
	}
	if stale := h.Fire(replaced.State, restarted.Timers[0]); stale.State.Count != 1 || len(stale.Timers) != 0 {
		t.Fatalf("the replaced reminder's tick is ignored: %+v", stale)
	}
	if restarted.Timers[0].After != 500*time.Millisecond {
		t.Fatalf("fractions of a second: %+v", restarted.Timers[0])
	}
}

// A message redelivered after a crash (same mailbox seq, next attempt) sets
// the same timer, with the same id, and reaches the same state: the core
// keeps one timer, not two. Apply is what the plugin runs each delivery
// with; the test calls it twice with the same message.
func TestRedeliveryDerivesTheSameTimer(t *testing.T) {
	b := behaviour()
	deliver := func(s state, m sdk.Message) sdk.Outcome[state] {
		t.Helper()
		out := sdk.Apply(context.Background(), b, alice, s, m, nil)
		if out.Err != nil || len(out.Timers) != 1 {
			t.Fatalf("attempt %d of message %d: %+v", m.Attempt, m.Seq, out)
		}
		return out
	}
	every := sdk.Message{Seq: 7, ID: "m7", Payload: []byte(`{"kind":"every","seconds":2,"text":"stand up"}`), Attempt: 1}
	first := deliver(state{}, every)
	every.Attempt = 2
	second := deliver(state{}, every)
	if first.Timers[0].ID != second.Timers[0].ID || first.State != second.State {
		t.Fatalf("redelivered every: %+v then %+v", first, second)
	}

	tick := sdk.Message{Seq: 9, Payload: tickPayload, TimerID: first.State.Timer, Attempt: 1}
	a := deliver(first.State, tick)
	tick.Attempt = 2
	c := deliver(first.State, tick)
	if a.Timers[0].ID != c.Timers[0].ID || a.State != c.State || a.State.Count != 1 {
		t.Fatalf("redelivered tick: %+v then %+v", a, c)
	}
	if a.Timers[0].ID == first.Timers[0].ID {
		t.Fatalf("the re-armed tick has an id of its own: %s", a.Timers[0].ID)
	}
}

// Requests the reminder cannot take are refused (not retried), and set no
// timer.
func TestBadRequestsAreRefused(t *testing.T) {
	h := sdktest.New(behaviour()).As(alice)
	for _, p := range []string{
		`{"kind":"every","seconds":0,"text":"stand up"}`,
		`{"kind":"every","seconds":1e9,"text":"stand up"}`,
		`{"kind":"every","seconds":2,"text":"  "}`,
		`{"kind":"every","seconds":"two","text":"stand up"}`,
		`{"kind":"tick"}`, // not from a timer
		`{"kind":"snooze"}`,
		"every 2s",
	} {
		out := h.Handle(state{}, p)
		if _, refused := out.Refused(); !refused || len(out.Timers) != 0 {
			t.Errorf("%s: want a refusal and no timer, got %+v", p, out)
		}
	}
}

func status(t *testing.T, reply []byte) state {
	t.Helper()
	var s state
	if err := json.Unmarshal(reply, &s); err != nil {
		t.Fatalf("status %q: %v", reply, err)
	}
	return s
}
