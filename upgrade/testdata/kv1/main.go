// Command kv1 is version 1 of the upgrade tests' behaviour "kv": its state
// (schema 1) counts the messages and records their payloads in order.
// Replies are "v1:" + the count. A payload "sleep:MS" takes MS
// milliseconds to handle (the tests of the pause budget); "bad-..." fails
// every time (an error, retried).
package main

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
)

type stateV1 struct {
	N       int      `json:"n"`
	Applied []string `json:"applied"`
}

func main() {
	sdk.Serve(sdk.Module[stateV1]{
		Name:    "kv",
		Version: "1.0.0",
		Codec:   sdk.JSONCodec[stateV1](1),
		Behaviour: sdk.Funcs[stateV1]{HandleFunc: func(ctx *sdk.Context, s stateV1, m sdk.Message) (stateV1, error) {
			if to, ok := strings.CutPrefix(string(m.Payload), "ask:"); ok {
				return s, ask(ctx, to)
			}
			if strings.HasPrefix(string(m.Payload), "bad-") {
				return s, errors.New("v1 fails every bad- message on purpose")
			}
			if ms, ok := strings.CutPrefix(string(m.Payload), "sleep:"); ok {
				n, _ := strconv.Atoi(ms)
				time.Sleep(time.Duration(n) * time.Millisecond)
			}
			s.N++
			s.Applied = append(s.Applied, string(m.Payload))
			ctx.Reply([]byte("v1:" + strconv.Itoa(s.N)))
			return s, nil
		}},
	})
}

// ask ("ask:ACTOR") calls ACTOR with "asked" and replies what it heard,
// recording nothing: the tests of calls made long after an upgrade use it.
func ask(ctx *sdk.Context, to string) error {
	reply, err := ctx.Call(to, []byte("asked"))
	if err != nil {
		return err
	}
	ctx.Reply([]byte("v1 heard " + string(reply)))
	return nil
}
