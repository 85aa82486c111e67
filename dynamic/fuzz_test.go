package dynamic

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// FuzzHandleResult feeds arbitrary bytes, decoded as a plugin's
// HandleResponse, to the host's check and conversion of a batch's answer,
// for a batch of n messages from a state at schema inSchema. It must never
// panic; it must refuse an inconsistent answer with ErrBadResponse (or a
// lone batch error with ErrBatchFailed); and what it accepts must hold the
// invariants the core commits on, and say what the plugin said. The seed
// corpus is in testdata/fuzz/FuzzHandleResult.
func FuzzHandleResult(f *testing.F) {
	good := &graftv1.HandleResponse{BatchId: 1, State: &graftv1.State{Schema: 2, Data: []byte(`{"n":1}`)},
		Results: []*graftv1.MessageResult{{StateChanged: true, HasReply: true, Reply: []byte("ok"),
			Outgoing: []*graftv1.Outgoing{{To: "b", Payload: []byte("hi")}}}}}
	seed, err := proto.Marshal(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, uint8(1), uint32(2), []byte(`{"n":0}`))
	good.Results[0].Timers = []*graftv1.TimerSet{{Id: "t:a:1:1", To: "a", AfterNanos: proto.Int64(5)}, {Id: "t:a:1:2", To: "b", AtUnixNanos: proto.Int64(-1)}}
	good.Results[0].CancelTimers = []string{"t:a:0:1"}
	good.Results[0].Spawns = []*graftv1.Spawn{{Name: "x", Behaviour: "b", Init: []byte("i")}}
	if seed, err = proto.Marshal(good); err != nil {
		f.Fatal(err)
	}
	f.Add(seed, uint8(1), uint32(2), []byte(`{"n":0}`))
	f.Fuzz(func(t *testing.T, data []byte, n uint8, inSchema uint32, inData []byte) {
		var resp graftv1.HandleResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		m := &Instance{info: Info{Behaviour: "fuzzed", CodeVersion: "1", SchemaVersion: 2},
			cfg: Config{Path: "/plugins/fuzzed", Limits: Limits{MaxMessageSize: fuzzMaxMessage}}}
		b := Batch{Actor: "a", State: State{Schema: inSchema, Data: inData}}
		for i := range int(n % 8) {
			b.Messages = append(b.Messages, Message{Seq: uint64(i + 1), Payload: []byte{byte(i)}})
		}
		res, err := m.result(b, &resp)
		if err != nil {
			checkRefusal(t, &resp, err)
			return
		}
		if err := accepted(b, &resp, res); err != nil {
			t.Fatalf("accepted an answer it should not have, or misread it: %v\nanswer: %v", err, &resp)
		}
	})
}

// checkRefusal checks that a refused answer is refused with the right kind.
func checkRefusal(t *testing.T, resp *graftv1.HandleResponse, err error) {
	t.Helper()
	switch {
	case errors.Is(err, ErrBatchFailed):
		if resp.BatchError == "" || len(resp.Results) > 0 || resp.State != nil {
			t.Fatalf("ErrBatchFailed for an answer that is not a lone batch error: %v", err)
		}
	case !errors.Is(err, ErrBadResponse):
		t.Fatalf("refused with %v, want ErrBadResponse or ErrBatchFailed", err)
	}
}

// fuzzMaxMessage is the message limit of the fuzzed module.
const fuzzMaxMessage = 64

// accepted checks what the core relies on in an accepted answer, apart
// from the implementation: one faithful result per message, a state at the
// plugin's schema, failures without effects, replies flagged, sends
// addressed, well-formed timers and spawns (see acceptedDeferred), and a
// state that changes only with a message that says so.
func accepted(b Batch, resp *graftv1.HandleResponse, res *BatchResult) error {
	if resp.BatchError != "" {
		return errors.New("a batch error was accepted")
	}
	if len(res.Results) != len(b.Messages) || len(resp.Results) != len(b.Messages) {
		return fmt.Errorf("%d results for %d messages", len(res.Results), len(b.Messages))
	}
	if res.State.Schema != 2 || !bytes.Equal(res.State.Data, resp.GetState().GetData()) {
		return fmt.Errorf("state %d/%q, the plugin said %v", res.State.Schema, res.State.Data, resp.GetState())
	}
	changed := false
	timerIDs := map[string]bool{}
	for i, r := range res.Results {
		p := resp.Results[i]
		if r.Err != p.Error || r.Refusal != p.Refusal || r.HasReply != p.HasReply || !bytes.Equal(r.Reply, p.Reply) ||
			r.StateChanged != p.StateChanged || len(r.Outgoing) != len(p.Outgoing) {
			return fmt.Errorf("result %d misread", i)
		}
		if r.Err != "" && (r.Refusal != "" || r.HasReply || len(r.Reply) > 0 || len(r.Outgoing) > 0 || r.StateChanged ||
			len(r.Timers) > 0 || len(r.CancelTimers) > 0 || len(r.Spawns) > 0) {
			return fmt.Errorf("result %d: a failure with effects", i)
		}
		if !r.HasReply && len(r.Reply) > 0 {
			return fmt.Errorf("result %d: reply bytes without has_reply", i)
		}
		for j, o := range r.Outgoing {
			if o.To == "" || o.To != p.Outgoing[j].To || !bytes.Equal(o.Payload, p.Outgoing[j].Payload) {
				return fmt.Errorf("result %d: send %d unaddressed or misread", i, j)
			}
		}
		if err := acceptedDeferred(r, p, timerIDs); err != nil {
			return fmt.Errorf("result %d: %w", i, err)
		}
		changed = changed || r.StateChanged
	}
	if !changed && b.State.Schema == 2 && !bytes.Equal(b.State.Data, res.State.Data) {
		return errors.New("the state changed with no message saying so")
	}
	return nil
}

// acceptedDeferred checks an accepted result's timers, cancels and spawns
// against what the plugin said and the bounds the core relies on: within
// wire's counts, ids non-empty and bounded, each timer addressed, with
// exactly one of a delay and a time, set once in the batch (seen) and not
// cancelled by its own message, spawns named, payloads within the limit.
func acceptedDeferred(r Result, p *graftv1.MessageResult, seen map[string]bool) error {
	if len(r.Timers) != len(p.Timers) || len(r.CancelTimers) != len(p.CancelTimers) || len(r.Spawns) != len(p.Spawns) ||
		len(r.Timers) > wire.MaxTimersPerMessage || len(r.CancelTimers) > wire.MaxCancelsPerMessage || len(r.Spawns) > wire.MaxSpawnsPerMessage {
		return errors.New("timers, cancels or spawns misread or too many")
	}
	for j, id := range r.CancelTimers {
		if id == "" || len(id) > wire.MaxTimerID || id != p.CancelTimers[j] {
			return fmt.Errorf("cancel %d malformed or misread", j)
		}
	}
	for j, t := range r.Timers {
		w := p.Timers[j]
		if t.ID == "" || len(t.ID) > wire.MaxTimerID || t.To == "" || t.ID != w.Id || t.To != w.To ||
			!bytes.Equal(t.Payload, w.Payload) || len(t.Payload) > fuzzMaxMessage || seen[t.ID] || slices.Contains(r.CancelTimers, t.ID) {
			return fmt.Errorf("timer %d malformed or misread", j)
		}
		seen[t.ID] = true
		switch {
		case (w.AfterNanos == nil) == (w.AtUnixNanos == nil):
			return fmt.Errorf("timer %d: accepted with both or neither of a delay and a time", j)
		case w.AfterNanos != nil && (t.After != time.Duration(*w.AfterNanos) || !t.At.IsZero()):
			return fmt.Errorf("timer %d: delay misread", j)
		case w.AtUnixNanos != nil && (t.After != 0 || t.At.IsZero() || t.At.UnixNano() != *w.AtUnixNanos):
			return fmt.Errorf("timer %d: time misread", j)
		}
	}
	for j, sp := range r.Spawns {
		w := p.Spawns[j]
		if sp.Name == "" || sp.Behaviour == "" || sp.Name != w.Name || sp.Behaviour != w.Behaviour ||
			!bytes.Equal(sp.Init, w.Init) || len(sp.Init) > fuzzMaxMessage {
			return fmt.Errorf("spawn %d malformed or misread", j)
		}
	}
	return nil
}
