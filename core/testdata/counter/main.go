// Command counter is the benchmarks' behaviour: the cheapest possible
// handler (a counter in the state), so the figures show graft's costs.
// It reports the behaviour name $COUNTER_NAME (default "counter"), so
// that one binary serves several behaviours of a benchmark's config.
package main

import (
	"cmp"
	"os"

	"github.com/graft-host/graft/dynamic/sdk"
)

type state struct {
	N uint64 `json:"n"`
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:    cmp.Or(os.Getenv("COUNTER_NAME"), "counter"),
		Version: "1.0.0",
		Behaviour: sdk.Funcs[state]{HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
			s.N++
			return s, nil
		}},
	})
}
