// Command pingpong is the round-trip benchmark's behaviour (a stand-in for
// examples/pingpong): "ping:ACTOR" calls ACTOR with "pong" and replies its
// answer; "pong" replies "pong". The state counts the messages handled.
package main

import (
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

type state struct {
	N int `json:"n"`
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:    "pingpong",
		Version: "1.0.0",
		Behaviour: sdk.Funcs[state]{HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
			s.N++
			p := string(m.Payload)
			if to, ok := strings.CutPrefix(p, "ping:"); ok {
				reply, err := ctx.Call(to, []byte("pong"))
				if err != nil {
					return s, err
				}
				ctx.Reply(reply)
				return s, nil
			}
			ctx.Reply([]byte("pong"))
			return s, nil
		}},
	})
}
