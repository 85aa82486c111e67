// Command counter is the full-disk tests' behaviour "counter": its state
// (schema 1) counts the messages it applied and their bytes, and keeps
// nothing else, so a mailbox of large payloads drains without its state
// growing. Replies are the count.
package main

import (
	"strconv"

	"github.com/graft-host/graft/dynamic/sdk"
)

type state struct {
	N     int   `json:"n"`
	Bytes int64 `json:"bytes"`
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:    "counter",
		Version: "1.0.0",
		Codec:   sdk.JSONCodec[state](1),
		Behaviour: sdk.Funcs[state]{HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
			s.N++
			s.Bytes += int64(len(m.Payload))
			ctx.Reply([]byte(strconv.Itoa(s.N)))
			return s, nil
		}},
	})
}
