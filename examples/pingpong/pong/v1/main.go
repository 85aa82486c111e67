// Command pong (v1) is the "pong" behaviour of graft's ping-pong example at
// code version 1.0.0, state schema 1. Compare it with ../v2, which changes
// both the reply and the state schema and migrates the state up from this
// version (and back down on rollback).
//
// Pong answers each "ping <ball> <n>" from an actor by sending
// "pong <ball> <n>" back to that actor, and counts the pings it answered.
// A "stats" call replies its state as JSON. Anything else is refused.
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

func main() { sdk.Run("pong", version, behaviour()) }

// behaviour routes pong's two kinds of message.
func behaviour() *sdk.Router[state] {
	return sdk.Routes[state]().
		On("ping", sdk.Text(func(ctx *sdk.Context, s state, args string) (state, error) {
			ball, n, ok := strings.Cut(args, " ")
			if !ok {
				return s, sdk.Refuse("pong: want \"ping <ball> <n>\", got \"ping %s\"", args)
			}
			s.Count++
			ctx.Send(ctx.Sender(), fmt.Appendf(nil, "pong %s %s", ball, n))
			return s, nil
		})).
		On("stats", func(ctx *sdk.Context, s state, _ sdk.Message) (state, error) {
			b, err := json.Marshal(struct {
				Version string `json:"version"`
				state
			}{version, s})
			if err != nil {
				return s, fmt.Errorf("pong: encode stats: %w", err)
			}
			ctx.Reply(b)
			return s, nil
		})
}
