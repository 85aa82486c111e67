// Command pong (v1) is the "pong" behaviour of graft's ping-pong example at
// code version 1.0.0, state schema 1. Compare it with ../v2, which changes
// both the reply and the state schema and migrates the state up from this
// version (and back down on rollback).
//
// Pong answers each "ping <ball> <n>" from an actor by sending
// "pong <ball> <n>" back to that actor, and counts the pings it answered.
// A "stats" call replies its state as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

// version is this module's code version, reported to the core and in stats.
const version = "1.0.0"

// state is pong's state, schema 1: a plain counter.
type state struct {
	Count int `json:"count"` // pings answered
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:    "pong",
		Version: version,
		Codec:   sdk.JSONCodec[state](1),
		Behaviour: sdk.Funcs[state]{
			HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
				words := strings.Fields(string(m.Payload))
				switch {
				case len(words) == 3 && words[0] == "ping":
					s.Count++
					ctx.Send(m.Sender, fmt.Appendf(nil, "pong %s %s", words[1], words[2]))
				case len(words) == 1 && words[0] == "stats":
					b, err := json.Marshal(struct {
						Version string `json:"version"`
						state
					}{version, s})
					if err != nil {
						return s, fmt.Errorf("pong: encode stats: %w", err)
					}
					ctx.Reply(b)
				default:
					return s, fmt.Errorf("pong: unknown message %q from %q (want \"ping <ball> <n>\" or \"stats\")", m.Payload, m.Sender)
				}
				return s, nil
			},
		},
	})
}
