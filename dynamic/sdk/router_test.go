package sdk_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/graft-host/graft/dynamic/sdk"
)

func TestKindOf(t *testing.T) {
	for payload, want := range map[string]string{
		`{"kind":"deposit","amount":5}`: "deposit",
		`  {"amount":5,"kind":"x"}`:     "x",
		`{"amount":5}`:                  "",
		"withdraw 5":                    "withdraw",
		"  stats\n":                     "stats",
		"ping":                          "ping",
		"":                              "",
		`{not json`:                     "{not",
	} {
		if got := sdk.KindOf([]byte(payload)); got != want {
			t.Errorf("KindOf(%q) = %q, want %q", payload, got, want)
		}
	}
}

type tally struct {
	N int `json:"n"`
}

// Apply is the code path of a plugin: a failure drops the message's
// effects and keeps the state handed in, a refusal keeps them, a panic is a
// *PanicError.
func TestApplyFailureRefusalAndPanic(t *testing.T) {
	b := sdk.Routes[tally]().
		On("fail", func(ctx *sdk.Context, s tally, m sdk.Message) (tally, error) {
			ctx.Send("x", []byte("lost"))
			ctx.Reply([]byte("lost"))
			s.N = 99
			return s, errors.New("disk on fire")
		}).
		On("refuse", func(ctx *sdk.Context, s tally, m sdk.Message) (tally, error) {
			ctx.Send("audit", []byte("refused once"))
			s.N++
			return s, sdk.Terminal(errors.New("no"))
		}).
		On("panic", func(*sdk.Context, tally, sdk.Message) (tally, error) { panic("boom") })
	ctx := context.Background()

	out := sdk.Apply(ctx, b, "t", tally{N: 1}, sdk.Message{Payload: []byte("fail")}, nil)
	if out.Err == nil || out.State.N != 1 || len(out.Sends) != 0 || out.HasReply {
		t.Fatalf("a failure must drop every effect: %+v", out)
	}
	if _, refused := out.Refused(); refused {
		t.Fatal("a plain error is not a refusal")
	}

	out = sdk.Apply(ctx, b, "t", tally{N: 1}, sdk.Message{Payload: []byte("refuse")}, nil)
	text, refused := out.Refused()
	if !refused || text != "no" || out.State.N != 2 || len(out.Sends) != 1 {
		t.Fatalf("a refusal keeps its state and sends: %+v", out)
	}

	out = sdk.Apply(ctx, b, "t", tally{N: 1}, sdk.Message{Payload: []byte("panic")}, nil)
	var pe *sdk.PanicError
	if !errors.As(out.Err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 || out.State.N != 1 {
		t.Fatalf("a panic is a failure with its value and stack: %+v", out)
	}
}

// Typed handlers refuse payloads of the wrong shape (retrying cannot fix
// them) and Text hands over the arguments after the kind.
func TestJSONAndTextAdapters(t *testing.T) {
	var gotArgs string
	b := sdk.Routes[tally]().
		On("add", sdk.JSON(func(ctx *sdk.Context, s tally, req struct {
			By int `json:"by"`
		}) (tally, error) {
			s.N += req.By
			return s, nil
		})).
		On("say", sdk.Text(func(ctx *sdk.Context, s tally, args string) (tally, error) {
			gotArgs = args
			return s, nil
		}))
	ctx := context.Background()
	out := sdk.Apply(ctx, b, "t", tally{}, sdk.Message{Payload: []byte(`{"kind":"add","by":3}`)}, nil)
	if out.Err != nil || out.State.N != 3 {
		t.Fatalf("add: %+v", out)
	}
	out = sdk.Apply(ctx, b, "t", tally{}, sdk.Message{Seq: 4, Payload: []byte(`{"kind":"add","by":"three"}`)}, nil)
	if text, refused := out.Refused(); !refused || !strings.Contains(text, "message 4") {
		t.Fatalf("a payload of the wrong type is refused, naming the message: %+v", out)
	}
	sdk.Apply(ctx, b, "t", tally{}, sdk.Message{Payload: []byte("say  hello there ")}, nil)
	if gotArgs != "hello there" {
		t.Fatalf("Text args = %q", gotArgs)
	}
}

// Errors a Call returns match by kind (errors.Is) and refusals by type
// (errors.As), with the callee's text intact.
func TestCallErrorsMatch(t *testing.T) {
	err := error(&sdk.CallError{To: "b", Kind: sdk.ErrCallCycle, Detail: "call cycle: a -> b -> a"})
	if !errors.Is(err, sdk.ErrCallCycle) || errors.Is(err, sdk.ErrUnknownActor) {
		t.Fatalf("kind matching: %v", err)
	}
	var re *sdk.RefusedError
	err = error(&sdk.RefusedError{Actor: "vault", Reason: "closed"})
	if !errors.As(err, &re) || re.Reason != "closed" || err.Error() != "vault refused: closed" {
		t.Fatalf("refusal matching: %v", err)
	}
	if sdk.Terminal(nil) != nil {
		t.Fatal("Terminal(nil) must be nil")
	}
}

// Ids of calls made from a call stay bounded however deep the chain, and
// stay stable for a redelivered message.
func TestDerivedCallIDsStayBounded(t *testing.T) {
	var ids []string
	b := sdk.HandlerFunc[tally](func(ctx *sdk.Context, s tally, m sdk.Message) (tally, error) {
		_, _ = ctx.Call("next", nil)
		return s, nil
	})
	rec := recordingCaller{ids: &ids}
	id := "client-1"
	for range 20 { // each hop's message id is the previous hop's call id
		sdk.Apply(context.Background(), b, "hop", tally{}, sdk.Message{ID: id}, rec)
		id = ids[len(ids)-1]
		if len(id) > 200 {
			t.Fatalf("derived id grew to %d bytes: %s", len(id), id)
		}
	}
	deep := ids[len(ids)-2] // a message id that is itself a long derived id
	sdk.Apply(context.Background(), b, "hop", tally{}, sdk.Message{ID: deep}, rec)
	sdk.Apply(context.Background(), b, "hop", tally{}, sdk.Message{ID: deep}, rec)
	if first, again := ids[len(ids)-2], ids[len(ids)-1]; first != again {
		t.Fatalf("a redelivered message must derive the same id: %s vs %s", first, again)
	}
}

type recordingCaller struct{ ids *[]string }

func (r recordingCaller) Call(_ context.Context, req sdk.CallRequest) ([]byte, error) {
	*r.ids = append(*r.ids, req.ID)
	return nil, nil
}
