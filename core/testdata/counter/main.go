// Command counter is the benchmarks' behaviour: the cheapest possible
// handler (a counter in the state), so the figures show graft's costs.
package main

import "github.com/graft-host/graft/dynamic/sdk"

type state struct {
	N uint64 `json:"n"`
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:    "counter",
		Version: "1.0.0",
		Behaviour: sdk.Funcs[state]{HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
			s.N++
			return s, nil
		}},
	})
}
