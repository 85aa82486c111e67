package sdktest_test

import (
	"errors"
	"strings"
	"testing"

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
