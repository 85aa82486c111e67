package main

import (
	"testing"

	"github.com/graft-host/graft/dynamic/sdk/sdktest"
)

// v1's state migrates up to schema 2 and back down to what it was.
func TestMigrationRoundTrips(t *testing.T) {
	up, err := sdktest.RoundTrip(codec(), 1, []byte(`{"count":41}`))
	if err != nil {
		t.Fatal(err)
	}
	if up.Count != 41 || up.LastSeq != 0 {
		t.Fatalf("migrated up: %+v", up)
	}
}

// v2 answers with its own tag and remembers the sequence it answered.
func TestPongV2Replies(t *testing.T) {
	h := sdktest.New(behaviour()).WithCodec(codec())
	out := h.Handle(state{Count: 41}, "ping b3 7", sdktest.From("ping1"))
	if out.Err != nil || len(out.Sends) != 1 {
		t.Fatalf("%+v", out)
	}
	if s := out.Sends[0]; s.To != "ping1" || string(s.Payload) != "pong/v2 b3 7" {
		t.Fatalf("send: %+v", s)
	}
	if out.State.Count != 42 || out.State.LastSeq != 1 {
		t.Fatalf("state: %+v", out.State)
	}
	if _, refused := h.Handle(out.State, "ping nonsense").Refused(); !refused {
		t.Fatal("a malformed ping is refused")
	}
}
