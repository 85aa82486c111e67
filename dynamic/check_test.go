package dynamic

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// TestInconsistentAnswersAreRefused: each kind of inconsistent answer is
// refused with ErrBadResponse (a lone batch error with ErrBatchFailed), and
// consistent ones are accepted.
func TestInconsistentAnswersAreRefused(t *testing.T) {
	m := &Instance{info: Info{Behaviour: "b", CodeVersion: "1", SchemaVersion: 2}, cfg: Config{Path: "/p", Limits: Limits{MaxMessageSize: 10}}}
	st := func(schema uint32, data string) *graftv1.State {
		return &graftv1.State{Schema: schema, Data: []byte(data)}
	}
	one := []Message{{Seq: 1}}
	for _, tc := range []struct {
		name string
		in   State
		msgs []Message
		resp *graftv1.HandleResponse
		want error // nil: accepted
	}{
		{"changed", State{2, []byte("a")}, one, &graftv1.HandleResponse{State: st(2, "b"), Results: []*graftv1.MessageResult{{StateChanged: true}}}, nil},
		{"unchanged", State{2, []byte("a")}, one, &graftv1.HandleResponse{State: st(2, "a"), Results: []*graftv1.MessageResult{{}}}, nil},
		{"migrated on the way in", State{1, []byte("a")}, one, &graftv1.HandleResponse{State: st(2, "a2"), Results: []*graftv1.MessageResult{{Error: "x"}}}, nil},
		{"refusal with a reply", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Refusal: "no", HasReply: true, Reply: []byte("r")}}}, nil},
		{"lone batch error", State{2, nil}, one, &graftv1.HandleResponse{BatchError: "decode"}, ErrBatchFailed},
		{"no answer", State{2, nil}, one, nil, ErrBadResponse},
		{"batch error with results", State{2, nil}, one, &graftv1.HandleResponse{BatchError: "x", State: st(2, ""), Results: []*graftv1.MessageResult{{}}}, ErrBadResponse},
		{"too few results", State{2, nil}, []Message{{Seq: 1}, {Seq: 2}}, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{}}}, ErrBadResponse},
		{"no state", State{2, nil}, one, &graftv1.HandleResponse{Results: []*graftv1.MessageResult{{}}}, ErrBadResponse},
		{"another schema", State{2, nil}, one, &graftv1.HandleResponse{State: st(3, ""), Results: []*graftv1.MessageResult{{StateChanged: true}}}, ErrBadResponse},
		{"nil result", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{nil}}, ErrBadResponse},
		{"failure with a send", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Error: "x", Outgoing: []*graftv1.Outgoing{{To: "b"}}}}}, ErrBadResponse},
		{"failure with a reply", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Error: "x", HasReply: true}}}, ErrBadResponse},
		{"failure and refusal", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Error: "x", Refusal: "y"}}}, ErrBadResponse},
		{"failure that changed the state", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Error: "x", StateChanged: true}}}, ErrBadResponse},
		{"reply without has_reply", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Reply: []byte("r")}}}, ErrBadResponse},
		{"send to nobody", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Outgoing: []*graftv1.Outgoing{{Payload: []byte("p")}}}}}, ErrBadResponse},
		{"nil send", State{2, nil}, one, &graftv1.HandleResponse{State: st(2, ""), Results: []*graftv1.MessageResult{{Outgoing: []*graftv1.Outgoing{nil}}}}, ErrBadResponse},
		{"timers, cancels and spawns", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{after("t1", "a", 0), at("t2", "b", -5)},
			CancelTimers: []string{"t0"}, Spawns: []*graftv1.Spawn{{Name: "x", Behaviour: "b", Init: []byte("0123456789")}}}), nil},
		{"a later message cancels an earlier one's timer", State{2, nil}, []Message{{Seq: 1}, {Seq: 2}}, ok(
			&graftv1.MessageResult{Timers: []*graftv1.TimerSet{after("t1", "a", 1)}}, &graftv1.MessageResult{CancelTimers: []string{"t1"}}), nil},
		{"refusal with a timer", State{2, nil}, one, ok(&graftv1.MessageResult{Refusal: "no", Timers: []*graftv1.TimerSet{after("t1", "a", 1)}}), nil},
		{"failure with a timer", State{2, nil}, one, ok(&graftv1.MessageResult{Error: "x", Timers: []*graftv1.TimerSet{after("t1", "a", 1)}}), ErrBadResponse},
		{"failure with a cancel", State{2, nil}, one, ok(&graftv1.MessageResult{Error: "x", CancelTimers: []string{"t1"}}), ErrBadResponse},
		{"failure with a spawn", State{2, nil}, one, ok(&graftv1.MessageResult{Error: "x", Spawns: []*graftv1.Spawn{{Name: "x", Behaviour: "b"}}}), ErrBadResponse},
		{"timer to nobody", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{after("t1", "", 1)}}), ErrBadResponse},
		{"timer without an id", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{after("", "a", 1)}}), ErrBadResponse},
		{"timer with a long id", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{after(strings.Repeat("i", wire.MaxTimerID+1), "a", 1)}}), ErrBadResponse},
		{"nil timer", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{nil}}), ErrBadResponse},
		{"timer with no time", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{{Id: "t", To: "a"}}}), ErrBadResponse},
		{"timer with two times", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{{Id: "t", To: "a", AfterNanos: proto.Int64(1), AtUnixNanos: proto.Int64(1)}}}), ErrBadResponse},
		{"oversize timer", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{{Id: "t", To: "a", AfterNanos: proto.Int64(1), Payload: make([]byte, 11)}}}), ErrBadResponse},
		{"timer id set twice", State{2, nil}, []Message{{Seq: 1}, {Seq: 2}}, ok(
			&graftv1.MessageResult{Timers: []*graftv1.TimerSet{after("t1", "a", 1)}}, &graftv1.MessageResult{Timers: []*graftv1.TimerSet{after("t1", "a", 1)}}), ErrBadResponse},
		{"timer set and cancelled", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: []*graftv1.TimerSet{after("t1", "a", 1)}, CancelTimers: []string{"t1"}}), ErrBadResponse},
		{"too many timers", State{2, nil}, one, ok(&graftv1.MessageResult{Timers: slices.Repeat([]*graftv1.TimerSet{after("t", "a", 1)}, wire.MaxTimersPerMessage+1)}), ErrBadResponse},
		{"empty cancel", State{2, nil}, one, ok(&graftv1.MessageResult{CancelTimers: []string{""}}), ErrBadResponse},
		{"too many cancels", State{2, nil}, one, ok(&graftv1.MessageResult{CancelTimers: slices.Repeat([]string{"t"}, wire.MaxCancelsPerMessage+1)}), ErrBadResponse},
		{"spawn without a behaviour", State{2, nil}, one, ok(&graftv1.MessageResult{Spawns: []*graftv1.Spawn{{Name: "x"}}}), ErrBadResponse},
		{"spawn without a name", State{2, nil}, one, ok(&graftv1.MessageResult{Spawns: []*graftv1.Spawn{{Behaviour: "b"}}}), ErrBadResponse},
		{"nil spawn", State{2, nil}, one, ok(&graftv1.MessageResult{Spawns: []*graftv1.Spawn{nil}}), ErrBadResponse},
		{"oversize spawn", State{2, nil}, one, ok(&graftv1.MessageResult{Spawns: []*graftv1.Spawn{{Name: "x", Behaviour: "b", Init: make([]byte, 11)}}}), ErrBadResponse},
		{"too many spawns", State{2, nil}, one, ok(&graftv1.MessageResult{Spawns: slices.Repeat([]*graftv1.Spawn{{Name: "x", Behaviour: "b"}}, wire.MaxSpawnsPerMessage+1)}), ErrBadResponse},
		{"silent state change", State{2, []byte("a")}, one, &graftv1.HandleResponse{State: st(2, "b"), Results: []*graftv1.MessageResult{{}}}, ErrBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.result(Batch{Actor: "a", State: tc.in, Messages: tc.msgs}, tc.resp)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestInitBatchAnswers: an answer to a batch with Init set starts from the
// state Init made (a changed state is no silent change); an init error is
// ErrInitFailed alone, and ErrBadResponse with results or a state, or for a
// batch that did not ask for Init.
func TestInitBatchAnswers(t *testing.T) {
	m := &Instance{info: Info{Behaviour: "b", CodeVersion: "1", SchemaVersion: 2}, cfg: Config{Path: "/p"}}
	one := []Message{{Seq: 1}}
	initBatch := Batch{Actor: "a", Messages: one, Init: true}
	res, err := m.result(initBatch, &graftv1.HandleResponse{State: &graftv1.State{Schema: 2, Data: []byte("made by init")}, Results: []*graftv1.MessageResult{{}}})
	if err != nil {
		t.Fatalf("an init batch's state is Init's: %v", err)
	}
	if string(res.State.Data) != "made by init" {
		t.Fatalf("state %q, want Init's", res.State.Data)
	}
	for _, tc := range []struct {
		name  string
		batch Batch
		resp  *graftv1.HandleResponse
		want  error
	}{
		{"init error alone", initBatch, &graftv1.HandleResponse{InitError: "no"}, ErrInitFailed},
		{"init error with a state", initBatch, &graftv1.HandleResponse{InitError: "no", State: &graftv1.State{Schema: 2}}, ErrBadResponse},
		{"init error with results", initBatch, &graftv1.HandleResponse{InitError: "no", Results: []*graftv1.MessageResult{{}}}, ErrBadResponse},
		{"init error unasked", Batch{Actor: "a", Messages: one}, &graftv1.HandleResponse{InitError: "no"}, ErrBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.result(tc.batch, tc.resp); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// ok is an answer at schema 2 with an empty state and the results rs.
func ok(rs ...*graftv1.MessageResult) *graftv1.HandleResponse {
	return &graftv1.HandleResponse{State: &graftv1.State{Schema: 2}, Results: rs}
}

// after and at are relative and absolute timers.
func after(id, to string, d time.Duration) *graftv1.TimerSet {
	return &graftv1.TimerSet{Id: id, To: to, AfterNanos: proto.Int64(int64(d))}
}

func at(id, to string, unixNanos int64) *graftv1.TimerSet {
	return &graftv1.TimerSet{Id: id, To: to, AtUnixNanos: proto.Int64(unixNanos)}
}

// TestResultCarriesTimersAndSpawns: an accepted answer's timers, cancels
// and spawns reach the Result as the plugin sent them, a relative timer
// with its delay and an absolute one with its time, and Due reads either.
func TestResultCarriesTimersAndSpawns(t *testing.T) {
	m := &Instance{info: Info{Behaviour: "b", CodeVersion: "1", SchemaVersion: 2}, cfg: Config{Path: "/p"}}
	resp := ok(&graftv1.MessageResult{
		Timers:       []*graftv1.TimerSet{after("t1", "a", 3*time.Second), at("t2", "b", 1_900_000_000_000_000_000), after("t3", "a", -time.Second)},
		CancelTimers: []string{"t0"},
		Spawns:       []*graftv1.Spawn{{Name: "x", Behaviour: "b", Init: []byte("i")}},
	})
	res, err := m.result(Batch{Actor: "a", State: State{Schema: 2}, Messages: []Message{{Seq: 1}}}, resp)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Results[0]
	now := time.Unix(1000, 0)
	want := []TimerSet{{ID: "t1", To: "a", After: 3 * time.Second}, {ID: "t2", To: "b", At: time.Unix(0, 1_900_000_000_000_000_000)}, {ID: "t3", To: "a", After: -time.Second}}
	wantDue := []time.Time{now.Add(3 * time.Second), time.Unix(1_900_000_000, 0), now}
	if len(r.Timers) != len(want) {
		t.Fatalf("timers: %+v", r.Timers)
	}
	for i, w := range want {
		g := r.Timers[i]
		if g.ID != w.ID || g.To != w.To || g.After != w.After || !g.At.Equal(w.At) || g.At.IsZero() != w.At.IsZero() {
			t.Fatalf("timer %d: got %+v, want %+v", i, g, w)
		}
		if !g.Due(now).Equal(wantDue[i]) {
			t.Fatalf("timer %d due %v, want %v", i, g.Due(now), wantDue[i])
		}
	}
	if far := (TimerSet{After: time.Duration(math.MaxInt64)}).Due(now); far.Before(now) {
		t.Fatalf("a huge delay must saturate, not wrap: %v", far)
	}
	if len(r.CancelTimers) != 1 || r.CancelTimers[0] != "t0" || len(r.Spawns) != 1 ||
		r.Spawns[0].Name != "x" || r.Spawns[0].Behaviour != "b" || string(r.Spawns[0].Init) != "i" {
		t.Fatalf("%+v", r)
	}
}
