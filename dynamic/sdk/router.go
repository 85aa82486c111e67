package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// HandlerFunc is a handler as a plain function. It is a Behaviour on its
// own, starting every actor from the zero S, for behaviours that need no
// Init and no routing.
type HandlerFunc[S any] func(ctx *Context, state S, msg Message) (S, error)

// Init returns the zero S.
func (f HandlerFunc[S]) Init(*Context) (S, error) {
	var zero S
	return zero, nil
}

// Handle calls f.
func (f HandlerFunc[S]) Handle(ctx *Context, state S, msg Message) (S, error) {
	return f(ctx, state, msg)
}

// Router is a Behaviour that dispatches each message to a handler by its
// kind (see KindOf). Build it with Routes, then On for each kind:
//
//	sdk.Routes[account]().
//		On("deposit", sdk.JSON(deposit)).
//		On("balance", sdk.Text(balance))
//
// A message of a kind with no handler (and no Otherwise) is refused with a
// terminal error that lists the kinds it handles, since retrying it cannot
// help.
type Router[S any] struct {
	init      func(*Context) (S, error)
	routes    map[string]HandlerFunc[S]
	otherwise HandlerFunc[S]
}

// Routes returns an empty Router; actors start from the zero S unless Init
// says otherwise.
func Routes[S any]() *Router[S] {
	return &Router[S]{routes: map[string]HandlerFunc[S]{}}
}

// WithInit sets the function that makes an actor's first state.
func (r *Router[S]) WithInit(f func(ctx *Context) (S, error)) *Router[S] {
	r.init = f
	return r
}

// On routes messages of kind to h. A second On for the same kind replaces
// the first.
func (r *Router[S]) On(kind string, h HandlerFunc[S]) *Router[S] {
	r.routes[kind] = h
	return r
}

// Otherwise handles messages whose kind has no route.
func (r *Router[S]) Otherwise(h HandlerFunc[S]) *Router[S] {
	r.otherwise = h
	return r
}

// Init implements Behaviour.
func (r *Router[S]) Init(ctx *Context) (S, error) {
	if r.init == nil {
		var zero S
		return zero, nil
	}
	return r.init(ctx)
}

// Handle implements Behaviour: it finds the message's kind and calls its
// handler.
func (r *Router[S]) Handle(ctx *Context, state S, msg Message) (S, error) {
	kind := KindOf(msg.Payload)
	if h, ok := r.routes[kind]; ok {
		return h(ctx, state, msg)
	}
	if r.otherwise != nil {
		return r.otherwise(ctx, state, msg)
	}
	kinds := make([]string, 0, len(r.routes))
	for k := range r.routes {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return state, Refuse("unknown message kind %q (this behaviour handles: %s)", kind, strings.Join(kinds, ", "))
}

// KindOf is the kind of a payload, which a Router routes on: the "kind"
// field of a JSON object ({"kind":"deposit","amount":5} is "deposit"), or
// else the first word of the text ("withdraw 5" is "withdraw").
func KindOf(payload []byte) string {
	p := bytes.TrimLeftFunc(payload, unicode.IsSpace)
	if len(p) > 0 && p[0] == '{' {
		var k struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(p, &k) == nil {
			return k.Kind
		}
	}
	if i := bytes.IndexFunc(p, unicode.IsSpace); i >= 0 {
		p = p[:i]
	}
	return string(p)
}

// JSON adapts a handler of a typed request to a HandlerFunc: the payload
// is decoded as JSON into M first (a {"kind":...} field is ignored unless M
// has it). A payload that does not decode is refused, naming the type.
func JSON[S, M any](f func(ctx *Context, state S, req M) (S, error)) HandlerFunc[S] {
	return func(ctx *Context, state S, m Message) (S, error) {
		var req M
		if err := json.Unmarshal(m.Payload, &req); err != nil {
			return state, Refuse("message %d from %q is not a %T in JSON: %v", m.Seq, m.Sender, req, err)
		}
		return f(ctx, state, req)
	}
}

// Text adapts a handler of a text command to a HandlerFunc: it gets the
// payload after its first word, trimmed ("withdraw 5" gives "5").
func Text[S any](f func(ctx *Context, state S, args string) (S, error)) HandlerFunc[S] {
	return func(ctx *Context, state S, m Message) (S, error) {
		p := strings.TrimSpace(string(m.Payload))
		args := ""
		if i := strings.IndexFunc(p, unicode.IsSpace); i >= 0 {
			args = strings.TrimSpace(p[i:])
		}
		return f(ctx, state, args)
	}
}

// ReplyText answers the current message with a formatted text reply.
func (c *Context) ReplyText(format string, args ...any) {
	c.Reply(fmt.Appendf(nil, format, args...))
}
