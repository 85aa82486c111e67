package core_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/graft-host/graft/core"
)

// tracedCore starts a core of recorder actors that traces into an
// in-memory exporter.
func tracedCore(t *testing.T, actors ...string) (*core.Core, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := recorderConfig(t, t.TempDir(), actors...)
	cfg.Tracing = tp
	return startCore(t, cfg), exp
}

// handleSpans are the spans of handled messages, in the order they
// started: the exporter has them in the order they ended, and a message
// that a batch sent can be handled, and its span ended, before the
// sending batch's goroutine ends its own.
func handleSpans(exp *tracetest.InMemoryExporter) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "graft.handle" && attr(s, "graft.outcome") == "handled" {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == attribute.Key(key) {
			return kv.Value.String()
		}
	}
	return ""
}

// spanNamed is the only exported span called name.
func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %s", name)
	return found[0]
}

// assertChildOf checks that child's parent is parent's span, in its trace.
func assertChildOf(t *testing.T, child, parent tracetest.SpanStub, what string) {
	t.Helper()
	assert.Equal(t, parent.SpanContext.TraceID(), child.SpanContext.TraceID(), "%s: one trace", what)
	assert.Equal(t, parent.SpanContext.SpanID(), child.Parent.SpanID(), "%s: parent link", what)
}

// A send from a handler continues its sender's trace: a client's send to
// ping, ping's send to pong and pong's send back to ping are one trace,
// each message's span the child of the span that sent it.
func TestSendsContinueTheSendersTrace(t *testing.T) {
	c, exp := tracedCore(t, "ping", "pong")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Send(ctx, "ping", []byte("send:pong:send:ping:done"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "three handled messages", func() bool { return len(handleSpans(exp)) >= 3 })

	hs := handleSpans(exp)
	require.Len(t, hs, 3)
	send := spanNamed(t, exp, "graft.send")
	assert.Equal(t, trace.SpanKindProducer, send.SpanKind)
	assert.Equal(t, "ping", attr(hs[0], "graft.actor"))
	assert.Equal(t, "pong", attr(hs[1], "graft.actor"))
	assert.Equal(t, "ping", attr(hs[2], "graft.actor"))
	assertChildOf(t, hs[0], send, "ping handles the client's send")
	assertChildOf(t, hs[1], hs[0], "pong handles ping's send")
	assertChildOf(t, hs[2], hs[1], "ping handles pong's send")
	assert.Equal(t, "recorder", attr(hs[1], "graft.behaviour"))
	assert.Equal(t, "ping", attr(hs[1], "graft.sender"))
	assert.NotEmpty(t, attr(hs[1], "graft.version"))

	// Each message span links to its batch's span, which covers it.
	batches := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.Name == "graft.batch" {
			batches[s.SpanContext.SpanID()] = s
		}
	}
	for _, h := range hs {
		require.Len(t, h.Links, 1, "a message span links to its batch")
		b, ok := batches[h.Links[0].SpanContext.SpanID()]
		require.True(t, ok, "the linked batch span is exported")
		assert.Equal(t, attr(h, "graft.actor"), attr(b, "graft.actor"))
		assert.False(t, b.Parent.IsValid(), "a batch span is a root: its messages may come from many traces")
	}
}

// A call from a handler continues the calling message's trace: the
// callee's message span is the child of the graft.call span, which is the
// child of the calling message's span.
func TestCallsContinueTheCallersTrace(t *testing.T) {
	c, exp := tracedCore(t, "ping", "pong")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := c.Call(ctx, "ping", []byte("call:pong:hello"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:hello", string(reply))
	waitFor(t, 20*time.Second, "two handled messages", func() bool { return len(handleSpans(exp)) >= 2 })

	var calls []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "graft.call" {
			calls = append(calls, s)
		}
	}
	require.Len(t, calls, 2, "the client's call and ping's call")
	hs := handleSpans(exp)
	byActor := map[string]tracetest.SpanStub{}
	for _, h := range hs {
		byActor[attr(h, "graft.actor")] = h
	}
	ping, pong := byActor["ping"], byActor["pong"]
	var outer, inner tracetest.SpanStub
	for _, s := range calls {
		if s.Parent.IsValid() {
			inner = s
		} else {
			outer = s
		}
	}
	assert.Equal(t, trace.SpanKindClient, outer.SpanKind)
	assertChildOf(t, ping, outer, "ping handles the client's call")
	assertChildOf(t, inner, ping, "ping's call is made while handling the message")
	assertChildOf(t, pong, inner, "pong handles ping's call")
	assert.Equal(t, "pong", attr(inner, "graft.actor"))
}

// A traceparent round-trips, and a malformed one names no span.
func TestTraceParentRoundTrips(t *testing.T) {
	assert.Equal(t, "", core.TraceParent(trace.SpanContext{}))
	assert.False(t, core.ParseTraceParent("").IsValid())
	assert.False(t, core.ParseTraceParent("00-zz-yy-01").IsValid(), "a malformed traceparent names no span")
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	sc := core.ParseTraceParent(tp)
	require.True(t, sc.IsValid())
	assert.True(t, sc.IsRemote())
	assert.Equal(t, tp, core.TraceParent(sc))
}
