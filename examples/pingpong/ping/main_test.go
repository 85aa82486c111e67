package main

import (
	"encoding/json"
	"testing"

	"github.com/graft-host/graft/dynamic/sdk/sdktest"
)

// A ball bounces: each pong reply is counted once and hits the ball again;
// a duplicate reply is counted as such and starts no second ball.
func TestBallsBounceAndDuplicatesAreCounted(t *testing.T) {
	h := sdktest.New(behaviour()).As("ping1")
	s, err := h.Init()
	if err != nil {
		t.Fatal(err)
	}
	out := h.Handle(s, "start 2")
	if out.Err != nil || len(out.Sends) != 2 || string(out.Sends[0].Payload) != "ping b1 1" {
		t.Fatalf("start 2: %+v", out)
	}
	out = h.Handle(out.State, "pong b1 1", sdktest.From("pong"))
	if out.Err != nil || len(out.Sends) != 1 || string(out.Sends[0].Payload) != "ping b1 2" {
		t.Fatalf("first bounce: %+v", out)
	}
	out = h.Handle(out.State, "pong b1 1", sdktest.From("pong"))
	if out.Err != nil || len(out.Sends) != 0 || out.State.Duplicated != 1 {
		t.Fatalf("a duplicate is counted and hits nothing: %+v", out)
	}
	out = h.Handle(out.State, "pong/v2 b1 2", sdktest.From("pong"))
	if out.State.ByTag["pong/v2"] != 1 || out.State.Pongs != 2 {
		t.Fatalf("v2's tag is counted: %+v", out.State)
	}

	stats := h.Handle(out.State, "stats")
	var got state
	if err := json.Unmarshal(stats.Reply, &got); err != nil || got.Pongs != 2 {
		t.Fatalf("stats replies the state: %s (%v)", stats.Reply, err)
	}
}

// Requests ping cannot take are refused, not retried.
func TestBadRequestsAreRefused(t *testing.T) {
	h := sdktest.New(behaviour())
	s, _ := h.Init()
	for _, p := range []string{"start 0", "start lots", "pong b9 1", "serve"} {
		out := h.Handle(s, p)
		if _, refused := out.Refused(); !refused {
			t.Errorf("%q: want a refusal, got %+v", p, out)
		}
	}
}
