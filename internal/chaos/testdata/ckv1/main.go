// Command ckv1 is version 1 of the chaos harness's behaviour "ckv": its
// state (schema 1) records every payload it applied, in order, so the
// harness can check exactly-once and per-sender order from the committed
// state. A payload starting with "poison:" exits the process every time
// (a poison message, to be dead-lettered). Replies are "v1:" + the count.
package main

import (
	"os"
	"strconv"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

type stateV1 struct {
	N       int      `json:"n"`
	Applied []string `json:"applied"`
}

func main() {
	sdk.Serve(sdk.Module[stateV1]{
		Name:    "ckv",
		Version: "1.0.0",
		Codec:   sdk.JSONCodec[stateV1](1),
		Behaviour: sdk.Funcs[stateV1]{HandleFunc: func(ctx *sdk.Context, s stateV1, m sdk.Message) (stateV1, error) {
			if strings.HasPrefix(string(m.Payload), "poison:") {
				os.Exit(3)
			}
			if strings.HasPrefix(string(m.Payload), "oversize:") {
				// A state over the core's limit (4 MiB by default): this
				// message must fail every time and end dead-lettered,
				// without harming the module or its neighbours.
				s.Applied = append(s.Applied, string(m.Payload)+strings.Repeat("x", 5<<20))
				return s, nil
			}
			s.N++
			s.Applied = append(s.Applied, string(m.Payload))
			ctx.Reply([]byte("v1:" + strconv.Itoa(s.N)))
			return s, nil
		}},
	})
}
