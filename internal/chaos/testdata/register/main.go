// Command register is the chaos harness's register behaviour: "put V"
// stores V and replies the previous value, "get" replies the value. Calls
// on it are checked for linearizability, and because a put returns what it
// overwrote, a put applied twice or lost shows up in the history.
package main

import (
	"errors"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

type state struct {
	Value string `json:"value"`
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:    "register",
		Version: "1.0.0",
		Behaviour: sdk.Funcs[state]{HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
			p := string(m.Payload)
			switch {
			case p == "get":
				ctx.Reply([]byte(s.Value))
				return s, nil
			case strings.HasPrefix(p, "put "):
				ctx.Reply([]byte(s.Value))
				s.Value = strings.TrimPrefix(p, "put ")
				return s, nil
			}
			return s, errors.New("register: want \"put V\" or \"get\"")
		}},
	})
}
