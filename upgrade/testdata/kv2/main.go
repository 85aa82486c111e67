// Command kv2 is version 2 of "kv": the state (schema 2) renames the count
// and remembers the last payload; it migrates up from schema 1 and down
// again. Replies are "v2:" + the count.
//
// Build-time switches (-ldflags "-X main.fault=..."), for the tests of
// failed upgrades: fault=error|panic|hang breaks the up-migration, and
// fault=marked breaks it only for states that applied a "nomigrate";
// noDown=1 drops the down-migration (rollback must be refused); code=X
// overrides the code version; fault=flaky fails one in 20 of the messages
// of kind "put" (payload "put-N": those with N a multiple of 20), for the
// tests of canaries that must roll back; failKind=K fails every message
// of kind K (payload "K-..."), for the tests of a dry run's replay.
package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

var (
	fault    string
	failKind string
	noDown   string
	code     = "2.0.0"
)

type stateV1 struct {
	N       int      `json:"n"`
	Applied []string `json:"applied"`
}

type stateV2 struct {
	Count   int      `json:"count"`
	Last    string   `json:"last"`
	Applied []string `json:"applied"`
}

func up(o stateV1) (stateV2, error) {
	switch fault {
	case "error":
		return stateV2{}, errors.New("migration refused on purpose")
	case "panic":
		panic("migration panicked on purpose")
	case "hang":
		select {}
	case "marked":
		for _, p := range o.Applied {
			if p == "nomigrate" {
				return stateV2{}, errors.New("this actor's state is marked not to migrate")
			}
		}
	}
	n := stateV2{Count: o.N, Applied: o.Applied}
	if len(o.Applied) > 0 {
		n.Last = o.Applied[len(o.Applied)-1]
	}
	return n, nil
}

func down(n stateV2) (stateV1, error) { return stateV1{N: n.Count, Applied: n.Applied}, nil }

func main() {
	codec := sdk.JSONCodec[stateV2](2).Up(1, sdk.JSONStep(up))
	if noDown == "" {
		codec = codec.Down(2, sdk.JSONStep(down))
	}
	sdk.Serve(sdk.Module[stateV2]{
		Name:    "kv",
		Version: code,
		Codec:   codec,
		Behaviour: sdk.Funcs[stateV2]{HandleFunc: func(ctx *sdk.Context, s stateV2, m sdk.Message) (stateV2, error) {
			if to, ok := strings.CutPrefix(string(m.Payload), "ask:"); ok {
				return s, ask(ctx, to)
			}
			if failKind != "" && strings.HasPrefix(string(m.Payload), failKind+"-") {
				return s, errors.New("v2 fails every " + failKind + " on purpose")
			}
			if n, ok := strings.CutPrefix(string(m.Payload), "put-"); ok && fault == "flaky" {
				if i, err := strconv.Atoi(n); err == nil && i%20 == 0 {
					return s, errors.New("v2 fails this put on purpose")
				}
			}
			s.Count++
			s.Last = string(m.Payload)
			s.Applied = append(s.Applied, string(m.Payload))
			ctx.Reply([]byte("v2:" + strconv.Itoa(s.Count)))
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
	ctx.Reply([]byte("v2 heard " + string(reply)))
	return nil
}
