package dynamic

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
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
	f.Fuzz(func(t *testing.T, data []byte, n uint8, inSchema uint32, inData []byte) {
		var resp graftv1.HandleResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		m := &Module{info: Info{Behaviour: "fuzzed", CodeVersion: "1", SchemaVersion: 2}, cfg: Config{Path: "/plugins/fuzzed"}}
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

// accepted checks what the core relies on in an accepted answer, apart
// from the implementation: one faithful result per message, a state at the
// plugin's schema, failures without effects, replies flagged, sends
// addressed, and a state that changes only with a message that says so.
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
	for i, r := range res.Results {
		p := resp.Results[i]
		if r.Err != p.Error || r.Refusal != p.Refusal || r.HasReply != p.HasReply || !bytes.Equal(r.Reply, p.Reply) ||
			r.StateChanged != p.StateChanged || len(r.Outgoing) != len(p.Outgoing) {
			return fmt.Errorf("result %d misread", i)
		}
		if r.Err != "" && (r.Refusal != "" || r.HasReply || len(r.Reply) > 0 || len(r.Outgoing) > 0 || r.StateChanged) {
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
		changed = changed || r.StateChanged
	}
	if !changed && b.State.Schema == 2 && !bytes.Equal(b.State.Data, res.State.Data) {
		return errors.New("the state changed with no message saying so")
	}
	return nil
}
