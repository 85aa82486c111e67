// Package sdk is what a graft behaviour plugin imports: implement Behaviour
// with a typed state, describe the state's schema with a Codec, and call
// Serve from main. The SDK imports nothing from graft's core, so a
// behaviour stays small and never depends on the core's internals.
//
// State lives in the core, never in the plugin: every Handle gets the
// actor's state and returns the new one, and the core commits it with the
// message's effects (Send, Reply) in one transaction. Handlers must therefore
// be deterministic functions of (state, message) plus what they learn
// through Context.Call, since a message may be redelivered after a crash.
//
// A complete echo behaviour (go build it, and point graft at the binary):
//
//	package main
//
//	import "github.com/graft-host/graft/dynamic/sdk"
//
//	type state struct {
//		Count int    `json:"count"`
//		Last  string `json:"last"`
//	}
//
//	func main() {
//		sdk.Serve(sdk.Module[state]{
//			Name:    "echo",
//			Version: "1.0.0",
//			Codec:   sdk.JSONCodec[state](1),
//			Behaviour: sdk.Funcs[state]{
//				HandleFunc: func(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
//					ctx.Reply(m.Payload) // answer a call
//					if m.Sender != "" {
//						ctx.Send(m.Sender, m.Payload) // and echo to the sender
//					}
//					s.Count++
//					s.Last = string(m.Payload)
//					return s, nil
//				},
//			},
//		})
//	}
//
// Version 2 of a behaviour that changes its state type bumps the codec's
// version and registers the step up from 1 and the step back down (for
// rollback, like Erlang's {down, Vsn}):
//
//	codec := sdk.JSONCodec[stateV2](2).
//		Up(1, sdk.JSONStep(func(o stateV1) (stateV2, error) { return stateV2{Count: o.Count}, nil })).
//		Down(2, sdk.JSONStep(func(n stateV2) (stateV1, error) { return stateV1{Count: n.Count}, nil }))
//
// A panic in Init, Handle or a migration step becomes an error for that
// call alone (the message fails, with the panic value); the plugin keeps
// serving. When the core process dies, however it dies, the plugin exits at
// once (Serve watches a pipe inherited from the core).
package sdk
