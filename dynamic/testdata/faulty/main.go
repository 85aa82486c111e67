// Command faulty misbehaves on request: the payload says how.
//
//	"panic"  panics in Handle       "error" returns an error
//	"hang"   blocks forever         "exit"  exits the process with status 7
//	"mutate" mutates the state in place, then fails
//	"pid"    replies with its pid   anything else: echo
//
// It also panics in Init for actor "bad".
package main

import (
	"errors"
	"os"
	"strconv"

	"github.com/graft-host/graft/dynamic/sdk"
)

type state struct {
	Seen []string `json:"seen"`
}

func main() {
	sdk.Serve(sdk.Module[*state]{Name: "faulty", Version: "0.1.0",
		Behaviour: sdk.Funcs[*state]{
			InitFunc: func(ctx *sdk.Context) (*state, error) {
				if ctx.Actor() == "bad" {
					panic("init refuses actor bad")
				}
				return &state{}, nil
			},
			HandleFunc: func(ctx *sdk.Context, s *state, m sdk.Message) (*state, error) {
				switch string(m.Payload) {
				case "panic":
					panic("boom on request")
				case "error":
					return s, errors.New("refused on request")
				case "hang":
					select {}
				case "exit":
					os.Exit(7)
				case "mutate":
					s.Seen = append(s.Seen, "MUTATED")
					return s, errors.New("failed after mutating")
				case "pid":
					ctx.Reply([]byte(strconv.Itoa(os.Getpid())))
					return s, nil
				}
				s.Seen = append(s.Seen, string(m.Payload))
				ctx.Reply(m.Payload)
				return s, nil
			},
		}})
}
