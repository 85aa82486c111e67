package core

// Tracing with OpenTelemetry, when Config.Tracing is set.
//
// The trace context travels inside messages (mailbox.Message.TraceParent,
// a W3C traceparent), so a trace follows a message through the store,
// across actors and across the cores of a cluster, and survives a crash
// of the core between the send and the handling:
//
//	client ─ graft.send ──▶ store ──▶ graft.batch (actor a)
//	              │                       └ graft.handle a#7  (child of graft.send,
//	              │                             │              link to its batch)
//	              │              Send / Call ◀──┘ TraceParent = handle a#7's span
//	              │                             ▼
//	              │         store ──▶ graft.batch (actor b)
//	              │                       └ graft.handle b#3  (child of handle a#7)
//	              ▼
//	   (its parent is the caller's span, from the control API's
//	    traceparent header or an embedding program's ctx)
//
// A message without a trace context (sent by a core that does not trace,
// or stored before tracing was on) is the child of its batch's span. A call
// a handler makes is a graft.call span, the child of the calling message's
// span: the plugin hands that span's traceparent back with the call
// (dynamic.CallRequest.TraceParent).
//
// The message spans of a batch share the batch's time: the plugin answers
// for the batch as a whole. A batch handled again (halved after a failure)
// gets new spans; only the committed attempt's spans are the parents of
// what its handlers sent. Timers start no trace of their own and carry
// none: a timer's message is the child of its batch. Only the traceparent
// is carried: vendors' tracestate is dropped.

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// tracerName names the core's instrumentation scope.
const tracerName = "github.com/graft-host/graft/core"

// Span attribute keys, shared by every span the core makes.
const (
	attrActor     = attribute.Key("graft.actor")
	attrBehaviour = attribute.Key("graft.behaviour")
	attrVersion   = attribute.Key("graft.version")
	attrSeq       = attribute.Key("graft.seq")
	attrSender    = attribute.Key("graft.sender")
	attrMessageID = attribute.Key("messaging.message.id")
	attrBatchSize = attribute.Key("messaging.batch.message_count")
	attrOutcome   = attribute.Key("graft.outcome")
)

// tracer makes the core's spans; a nil *tracer traces nothing and costs
// nothing, which is the default.
type tracer struct{ t trace.Tracer }

func newTracer(tp trace.TracerProvider) *tracer {
	if tp == nil {
		return nil
	}
	return &tracer{t: tp.Tracer(tracerName)}
}

// TraceParent is the W3C traceparent of sc ("" for an invalid one), the
// form a message carries its trace context in.
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return carrier.Get("traceparent")
}

// ParseTraceParent is the span context a traceparent names: an invalid one
// for "" or for anything that is not a well-formed traceparent.
func ParseTraceParent(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": s})
	return trace.SpanContextFromContext(ctx)
}

// startClient starts the span of a send or call from outside the actors
// (name "graft.send" or "graft.call"), the child of ctx's span if it has
// one. It returns a span that does nothing when tracing is off.
func (t *tracer) startClient(ctx context.Context, name, actor string, kind trace.SpanKind) (context.Context, trace.Span) {
	if t == nil {
		return ctx, noop.Span{}
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrActor.String(actor)))
}

// endSpan ends span, marking it failed with err when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// batchTrace holds the spans of one handled batch; nil when tracing is
// off, and every method works on nil.
type batchTrace struct {
	batch   trace.Span
	msgs    []trace.Span
	parents []string // msgs[i]'s traceparent: what message i's sends carry
}

// startBatch starts the spans of the batch msgs of spec's actor, handled
// by version.
func (t *tracer) startBatch(ctx context.Context, spec *ActorConfig, version string, msgs []mailbox.Message) *batchTrace {
	if t == nil || len(msgs) == 0 {
		return nil
	}
	common := []attribute.KeyValue{attrActor.String(spec.Name), attrBehaviour.String(spec.Behaviour), attrVersion.String(version)}
	bctx, batch := t.t.Start(ctx, "graft.batch", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(append(common, attrBatchSize.Int(len(msgs)),
			attribute.Int64("graft.batch.first_seq", int64(msgs[0].Seq)), attribute.Int64("graft.batch.last_seq", int64(msgs[len(msgs)-1].Seq)))...))
	bt := &batchTrace{batch: batch, msgs: make([]trace.Span, len(msgs)), parents: make([]string, len(msgs))}
	toBatch := trace.WithLinks(trace.Link{SpanContext: batch.SpanContext()})
	for i, m := range msgs {
		parent := bctx
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(append(common, attrSeq.Int64(int64(m.Seq)), attrSender.String(m.Sender))...)}
		if m.ID != "" {
			opts = append(opts, trace.WithAttributes(attrMessageID.String(m.ID)))
		}
		if sc := ParseTraceParent(m.TraceParent); sc.IsValid() {
			parent = trace.ContextWithRemoteSpanContext(ctx, sc)
			opts = append(opts, toBatch)
		}
		_, span := t.t.Start(parent, "graft.handle", opts...)
		bt.msgs[i], bt.parents[i] = span, TraceParent(span.SpanContext())
	}
	return bt
}

// parent is the traceparent that what message i's handler sent carries.
func (b *batchTrace) parent(i int) string {
	if b == nil {
		return ""
	}
	return b.parents[i]
}

// end ends the batch's spans. committed says the batch's results took
// effect; otherwise nothing of it did (it failed, or is handled again in
// smaller batches), and err, if any, says why.
func (b *batchTrace) end(res *dynamic.BatchResult, committed bool, err error) {
	if b == nil {
		return
	}
	for i, span := range b.msgs {
		var r *dynamic.Result
		if res != nil && i < len(res.Results) {
			r = &res.Results[i]
		}
		switch {
		case committed && r != nil && r.Refusal != "":
			span.SetAttributes(attrOutcome.String("refused"), attribute.String("graft.refusal", r.Refusal))
		case committed:
			span.SetAttributes(attrOutcome.String("handled"))
		case r != nil && r.Err != "":
			span.SetAttributes(attrOutcome.String("failed"))
			span.SetStatus(codes.Error, r.Err)
		default:
			span.SetAttributes(attrOutcome.String("not committed"))
		}
		span.End()
	}
	if !committed {
		b.batch.SetAttributes(attrOutcome.String("not committed"))
		if err != nil {
			b.batch.SetStatus(codes.Error, err.Error())
		}
	}
	b.batch.End()
}

// callContext is ctx carrying, as its remote parent, the calling message's
// span a handler's call names, when tracing is on.
func (t *tracer) callContext(ctx context.Context, req dynamic.CallRequest) context.Context {
	if t == nil {
		return ctx
	}
	if sc := ParseTraceParent(req.TraceParent); sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}
