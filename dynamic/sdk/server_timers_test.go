package sdk

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

type ticks struct {
	N int `json:"n"`
}

// testServer is a plugin server for b, with the host's limits set as Info
// would set them.
func testServer(b Behaviour[ticks], l limits) *server[ticks] {
	s := &server[ticks]{m: Module[ticks]{Name: "t", Version: "1", Codec: JSONCodec[ticks](1), Behaviour: b},
		stdout: os.Stdout, stderr: os.Stderr, host: &hostLink{}}
	s.limits.Store(&l)
	return s
}

// The wire carries timers with exactly one of after_nanos and
// at_unix_nanos present, cancels and spawns, and hands the handler the
// timer id of a timer's message.
func TestTimersAndSpawnsOnTheWire(t *testing.T) {
	at := time.Unix(1_900_000_000, 5)
	var gotTimer string
	b := HandlerFunc[ticks](func(ctx *Context, s ticks, m Message) (ticks, error) {
		gotTimer = m.TimerID
		ctx.SendAfter(3*time.Second, "a", []byte("later"))
		ctx.SendAt(at, "b", []byte("then"))
		ctx.CancelTimer("t:a:1:1")
		ctx.Spawn("order/1", "order", []byte("go"))
		s.N++
		return s, nil
	})
	resp := testServer(b, limits{message: 100, deferred: true}).handleBatch(context.Background(), &graftv1.HandleRequest{
		Actor: "a", State: &graftv1.State{Schema: 1, Data: []byte(`{"n":0}`)},
		Messages: []*graftv1.Message{{Seq: 9, Id: "m9", TimerId: "t:a:1:2"}},
	})
	if resp.BatchError != "" || len(resp.Results) != 1 || resp.Results[0].Error != "" {
		t.Fatalf("%v", resp)
	}
	if gotTimer != "t:a:1:2" {
		t.Fatalf("the handler sees the message's timer id, got %q", gotTimer)
	}
	r := resp.Results[0]
	if len(r.Timers) != 2 || len(r.CancelTimers) != 1 || len(r.Spawns) != 1 {
		t.Fatalf("%v", r)
	}
	after, abs := r.Timers[0], r.Timers[1]
	if after.Id != "t:a:9:1" || after.To != "a" || string(after.Payload) != "later" ||
		after.AfterNanos == nil || *after.AfterNanos != int64(3*time.Second) || after.AtUnixNanos != nil {
		t.Fatalf("SendAfter: %v", after)
	}
	if abs.Id != "t:a:9:2" || abs.AtUnixNanos == nil || *abs.AtUnixNanos != at.UnixNano() || abs.AfterNanos != nil {
		t.Fatalf("SendAt: %v", abs)
	}
	if r.CancelTimers[0] != "t:a:1:1" || r.Spawns[0].Name != "order/1" || r.Spawns[0].Behaviour != "order" || string(r.Spawns[0].Init) != "go" {
		t.Fatalf("%v", r)
	}
	zero := time.Duration(0)
	b0 := HandlerFunc[ticks](func(ctx *Context, s ticks, m Message) (ticks, error) {
		ctx.SendAfter(zero, "a", nil)
		return s, nil
	})
	resp = testServer(b0, limits{deferred: true}).handleBatch(context.Background(), &graftv1.HandleRequest{
		Actor: "a", State: &graftv1.State{Schema: 1, Data: []byte(`{"n":0}`)}, Messages: []*graftv1.Message{{Seq: 1}},
	})
	if ts := resp.Results[0].Timers[0]; ts.AfterNanos == nil || *ts.AfterNanos != 0 || ts.AtUnixNanos != nil {
		t.Fatalf("a zero delay is still present on the wire: %v", ts)
	}
}

// Timer and spawn init payloads are held to the message limit, as sends
// are: the message fails alone, saying which limit, and its neighbours in
// the batch commit.
func TestTimerAndSpawnPayloadsHaveTheMessageLimit(t *testing.T) {
	b := HandlerFunc[ticks](func(ctx *Context, s ticks, m Message) (ticks, error) {
		switch string(m.Payload) {
		case "timer":
			ctx.SendAfter(time.Second, "a", make([]byte, 11))
		case "spawn":
			ctx.Spawn("x", "b", make([]byte, 11))
		default:
			ctx.SendAfter(time.Second, "a", make([]byte, 10))
			ctx.Spawn("x", "b", make([]byte, 10))
		}
		s.N++
		return s, nil
	})
	resp := testServer(b, limits{message: 10, deferred: true}).handleBatch(context.Background(), &graftv1.HandleRequest{
		Actor: "a", State: &graftv1.State{Schema: 1, Data: []byte(`{"n":0}`)},
		Messages: []*graftv1.Message{{Seq: 1, Payload: []byte("timer")}, {Seq: 2, Payload: []byte("spawn")}, {Seq: 3, Payload: []byte("fits")}},
	})
	for i, want := range []string{
		`the message of timer t:a:1:1 to "a" is 11 bytes, over the 10-byte limit (limits.max_message_size)`,
		`the init payload of spawned actor "x" is 11 bytes, over the 10-byte limit (limits.max_message_size)`,
	} {
		if r := resp.Results[i]; !strings.Contains(r.Error, want) || len(r.Timers)+len(r.Spawns) != 0 {
			t.Fatalf("result %d: want %q, got %v", i, want, r)
		}
	}
	if r := resp.Results[2]; r.Error != "" || len(r.Timers) != 1 || len(r.Spawns) != 1 {
		t.Fatalf("a message within the limits commits: %v", r)
	}
	if string(resp.State.Data) != `{"n":1}` {
		t.Fatalf("only the last message applied: %s", resp.State.Data)
	}
}

// A host that does not say it commits timers and spawns (an older core,
// which would drop them) gets a failed message instead of lost effects.
func TestTimersFailWithAHostWithoutThem(t *testing.T) {
	b := HandlerFunc[ticks](func(ctx *Context, s ticks, m Message) (ticks, error) {
		switch string(m.Payload) {
		case "timer":
			ctx.SendAfter(time.Second, "a", nil)
		case "cancel":
			ctx.CancelTimer("t:a:1:1")
		case "spawn":
			ctx.Spawn("x", "b", nil)
		}
		return s, nil
	})
	resp := testServer(b, limits{}).handleBatch(context.Background(), &graftv1.HandleRequest{
		Actor: "a", State: &graftv1.State{Schema: 1, Data: []byte(`{"n":0}`)},
		Messages: []*graftv1.Message{{Seq: 1, Payload: []byte("timer")}, {Seq: 2, Payload: []byte("cancel")}, {Seq: 3, Payload: []byte("spawn")}, {Seq: 4}},
	})
	for i, r := range resp.Results[:3] {
		if !strings.Contains(r.Error, "does not support timers and spawns") {
			t.Fatalf("result %d: %v", i, r)
		}
	}
	if resp.Results[3].Error != "" {
		t.Fatalf("a message without them is unaffected: %v", resp.Results[3])
	}
}
