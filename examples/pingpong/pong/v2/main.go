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

func main() {
	codec := sdk.JSONCodec[state](2).
		Up(1, sdk.JSONStep(func(old stateV1) (state, error) {
			return state{Count: old.Count}, nil
		})).
		Down(2, sdk.JSONStep(func(s state) (stateV1, error) {
			return stateV1{Count: s.Count}, nil
		}))
	sdk.Serve(sdk.Module[state]{
		Name:    "pong",
		Version: version,
		Codec:   codec,
		Behaviour: sdk.Funcs[state]{
			HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
				words := strings.Fields(string(m.Payload))
				switch {
				case len(words) == 3 && words[0] == "ping":
					s.Count++
					s.LastSeq = m.Seq
					ctx.Send(m.Sender, fmt.Appendf(nil, "pong/v2 %s %s", words[1], words[2]))
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
