// Command ckv2 is version 2 of "ckv": the state (schema 2) renames the
// count and remembers the last payload, keeping the applied list; it
// migrates up from schema 1 and down again, so the harness can alternate
// upgrades and rollbacks under load. Poison exits like in ckv1. Replies
// are "v2:" + the count.
//
// Built with -ldflags "-X main.fault=flaky -X main.code=2.0.1" it is the
// bad version the harness's canaries must roll back: it fails (an error,
// retried; not a refusal) every message whose payload hashes even, about
// half of them.
package main

import (
	"errors"
	"hash/fnv"
	"os"
	"strconv"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

var (
	fault string
	code  = "2.0.0"
)

// failsOnPurpose says whether the flaky build fails payload.
func failsOnPurpose(payload []byte) bool {
	if fault != "flaky" {
		return false
	}
	h := fnv.New32a()
	_, _ = h.Write(payload)
	return h.Sum32()%2 == 0
}

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
	n := stateV2{Count: o.N, Applied: o.Applied}
	if len(o.Applied) > 0 {
		n.Last = o.Applied[len(o.Applied)-1]
	}
	return n, nil
}

func down(n stateV2) (stateV1, error) { return stateV1{N: n.Count, Applied: n.Applied}, nil }

func main() {
	sdk.Serve(sdk.Module[stateV2]{
		Name:    "ckv",
		Version: code,
		Codec:   sdk.JSONCodec[stateV2](2).Up(1, sdk.JSONStep(up)).Down(2, sdk.JSONStep(down)),
		Behaviour: sdk.Funcs[stateV2]{HandleFunc: func(ctx *sdk.Context, s stateV2, m sdk.Message) (stateV2, error) {
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
			if failsOnPurpose(m.Payload) {
				return s, errors.New("the flaky build fails this message on purpose")
			}
			s.Count++
			s.Last = string(m.Payload)
			s.Applied = append(s.Applied, string(m.Payload))
			ctx.Reply([]byte("v2:" + strconv.Itoa(s.Count)))
			return s, nil
		}},
	})
}
