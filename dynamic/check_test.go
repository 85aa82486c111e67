package dynamic

import (
	"errors"
	"testing"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// TestInconsistentAnswersAreRefused: each kind of inconsistent answer is
// refused with ErrBadResponse (a lone batch error with ErrBatchFailed), and
// consistent ones are accepted.
func TestInconsistentAnswersAreRefused(t *testing.T) {
	m := &Module{info: Info{Behaviour: "b", CodeVersion: "1", SchemaVersion: 2}, cfg: Config{Path: "/p"}}
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
