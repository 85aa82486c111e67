// Command protov2 speaks only behaviour protocol version 2, which this host
// does not.
package main

import "github.com/graft-host/graft/dynamic/sdk"

func main() {
	sdk.ServeVersion(sdk.Module[int]{Name: "echo", Version: "1",
		Behaviour: sdk.Funcs[int]{HandleFunc: func(_ *sdk.Context, s int, _ sdk.Message) (int, error) { return s, nil }}}, 2)
}
