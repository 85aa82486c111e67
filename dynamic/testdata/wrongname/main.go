// Command wrongname is a valid plugin whose behaviour name is "notecho".
package main

import "github.com/graft-host/graft/dynamic/sdk"

func main() {
	sdk.Serve(sdk.Module[int]{Name: "notecho", Version: "1",
		Behaviour: sdk.Funcs[int]{HandleFunc: func(_ *sdk.Context, s int, _ sdk.Message) (int, error) { return s, nil }}})
}
