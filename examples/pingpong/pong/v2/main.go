// Command pong (v2) is the "pong" behaviour of graft's ping-pong example at
// code version 2.0.0, state schema 2. Against ../v1 it changes two things:
//
//   - the reply: "pong/v2 <ball> <n>" instead of "pong <ball> <n>", so the
//     ping side can tell which version answered each bounce;
//   - the state: schema 1's plain counter {"count": N} becomes the record
//     {"count": N, "last_seq": S}, S being the mailbox sequence of the last
//     ping answered.
//
// The codec says how to move a v1 state up to schema 2 (the count is kept,
// last_seq starts at 0) and how to take it back down to schema 1 (the count
// is kept, last_seq dropped), which is what a rollback to v1 runs, like the
// {down, Vsn} of an Erlang code_change.
package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

// stateV1 is pong's state at schema 1, as v1 wrote it. Only the migration
// steps use it.
type stateV1 struct {
	Count int `json:"count"`
}

// version is this module's code version, reported to the core and in stats.
const version = "2.0.0"

// state is pong's state, schema 2: the counter and the last sequence seen.
type state struct {
	Count   int    `json:"count"`    // pings answered, carried over from v1
	LastSeq uint64 `json:"last_seq"` // mailbox sequence of the last ping answered
}

func main() { sdk.Run("pong", version, behaviour(), sdk.WithCodec(codec())) }

// codec is schema 2 with the step up from schema 1 and the step back down.
func codec() *sdk.Codec[state] {
	return sdk.JSONCodec[state](2).
		Up(1, sdk.JSONStep(func(old stateV1) (state, error) {
			return state{Count: old.Count}, nil
		})).
		Down(2, sdk.JSONStep(func(s state) (stateV1, error) {
			return stateV1{Count: s.Count}, nil
		}))
}

// behaviour routes pong's two kinds of message.
func behaviour() *sdk.Router[state] {
	return sdk.Routes[state]().
		On("ping", sdk.Text(func(ctx *sdk.Context, s state, args string) (state, error) {
			ball, n, ok := strings.Cut(args, " ")
			if !ok {
				return s, sdk.Refuse("pong: want \"ping <ball> <n>\", got \"ping %s\"", args)
			}
			s.Count++
			s.LastSeq = ctx.Message().Seq
			ctx.Send(ctx.Sender(), fmt.Appendf(nil, "pong/v2 %s %s", ball, n))
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
