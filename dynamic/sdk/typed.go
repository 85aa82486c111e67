package sdk

import (
	"encoding/json"
	"fmt"
)

// Typed messages. Payloads travel as bytes (the core never looks inside),
// but a behaviour usually speaks a few message types; these helpers let it
// handle and send typed values encoded as JSON, the same encoding the state
// codec uses by default.

// JSONHandler adapts a handler of typed messages to Funcs.HandleFunc: each
// payload is decoded as JSON into M before f sees it. A payload that does
// not decode fails that message alone, with an error naming the type.
func JSONHandler[S, M any](f func(ctx *Context, state S, msg M, meta Message) (S, error)) func(*Context, S, Message) (S, error) {
	return func(ctx *Context, state S, m Message) (S, error) {
		var msg M
		if err := json.Unmarshal(m.Payload, &msg); err != nil {
			return state, fmt.Errorf("message %d from %q is not a %T in JSON: %w", m.Seq, m.Sender, msg, err)
		}
		return f(ctx, state, msg, m)
	}
}

// SendJSON sends v, encoded as JSON, to actor `to`.
func SendJSON[T any](ctx *Context, to string, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("send %T to %s: %w", v, to, err)
	}
	ctx.Send(to, b)
	return nil
}

// ReplyJSON answers the current message with v encoded as JSON.
func ReplyJSON[T any](ctx *Context, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("reply %T: %w", v, err)
	}
	ctx.Reply(b)
	return nil
}

// CallJSON calls actor `to` with req encoded as JSON and decodes the reply
// into R.
func CallJSON[R, T any](ctx *Context, to string, req T) (R, error) {
	var r R
	b, err := json.Marshal(req)
	if err != nil {
		return r, fmt.Errorf("call %s with %T: %w", to, req, err)
	}
	out, err := ctx.Call(to, b)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("call %s: the reply is not a %T in JSON: %w", to, r, err)
	}
	return r, nil
}
