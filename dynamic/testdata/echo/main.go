// Command echo is the smallest useful behaviour: it replies with what it
// gets, forwards "fwd:<actor>:<text>" payloads, answers
// "call:<actor>:<text>" with the reply of a synchronous call, and counts messages. Its
// state is at schema 2, with migrations from and back to schema 1.
//
// "timers" sets a timer to itself in 5s, one to "other" at Unix time 2e9,
// cancels "t:old:1:1", spawns "child/<seq>" of behaviour echo with init
// "hi", and replies with the timer id of the message; "bigtimer:<n>" sets a
// timer with an n-byte payload.
package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
)

type stateV1 struct {
	Count int `json:"count"`
}

type state struct {
	Count int    `json:"count"`
	Last  string `json:"last"`
}

func handle(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
	if to, text, ok := strings.Cut(strings.TrimPrefix(string(m.Payload), "fwd:"), ":"); ok && strings.HasPrefix(string(m.Payload), "fwd:") {
		ctx.Send(to, []byte(text))
	}
	if to, text, ok := strings.Cut(strings.TrimPrefix(string(m.Payload), "call:"), ":"); ok && strings.HasPrefix(string(m.Payload), "call:") {
		reply, err := ctx.Call(to, []byte(text))
		if err != nil {
			return s, err
		}
		ctx.Reply(reply)
		return s, nil
	}
	if string(m.Payload) == "timers" {
		ctx.SendAfter(5*time.Second, ctx.Actor(), []byte("tick"))
		ctx.SendAt(time.Unix(2e9, 0), "other", []byte("at"))
		ctx.CancelTimer("t:old:1:1")
		ctx.Spawn("child/"+strconv.FormatUint(m.Seq, 10), "echo", []byte("hi"))
		ctx.Reply([]byte("timer:" + ctx.TimerID()))
		return s, nil
	}
	if n, ok := strings.CutPrefix(string(m.Payload), "bigtimer:"); ok {
		size, err := strconv.Atoi(n)
		if err != nil {
			return s, sdk.Refuse("bigtimer wants a size: %v", err)
		}
		ctx.SendAfter(time.Second, ctx.Actor(), make([]byte, size))
		return s, nil
	}
	ctx.Reply(m.Payload)
	s.Count++
	s.Last = string(m.Payload)
	return s, nil
}

func main() {
	codec := sdk.JSONCodec[state](2).
		Up(1, sdk.JSONStep(func(o stateV1) (state, error) { return state{Count: o.Count}, nil })).
		Down(2, sdk.JSONStep(func(n state) (stateV1, error) { return stateV1{Count: n.Count}, nil }))
	sdk.Serve(sdk.Module[state]{Name: "echo", Version: "2.0.0", Codec: codec,
		Behaviour: sdk.Funcs[state]{HandleFunc: handle}})
}
