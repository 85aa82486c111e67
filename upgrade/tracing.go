package upgrade

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/graft-host/graft/mailbox"
)

// Spans of an op, when Options.Tracing is set: one graft.upgrade span per
// op (an upgrade, a rollback, either resumed after a restart), with a child
// span per stage of the state machine and per group moved:
//
//	graft.upgrade {behaviour, kind, from, to, outcome}
//	├── graft.upgrade.load
//	├── graft.upgrade.check
//	├── graft.upgrade.before_move   (a cluster's announcement)
//	├── graft.upgrade.journal
//	└── graft.upgrade.move
//	    ├── graft.upgrade.group {index, size, moved, over_budget}
//	    └── ...
//
// The op's span is the child of its caller's (a traced control API
// request): a root span otherwise.

// tracerName names the upgrade manager's instrumentation scope.
const tracerName = "github.com/graft-host/graft/upgrade"

// newTracer is tp's tracer for the manager, one that records nothing
// when tp is nil.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// startOp starts op's span.
func (m *Manager) startOp(ctx context.Context, behaviour string, op *Op) (context.Context, trace.Span) {
	return m.tracer.Start(ctx, "graft.upgrade", trace.WithAttributes(
		attribute.String("graft.behaviour", behaviour), attribute.String("graft.upgrade.kind", string(op.Kind)),
		attribute.Bool("graft.upgrade.resumed", op.resumed), attribute.Bool("graft.upgrade.canary", op.Canary != nil)))
}

// endOp ends an op's span with what its record says.
func endOp(span trace.Span, rec mailbox.UpgradeRecord, err error) {
	span.SetAttributes(attribute.String("graft.upgrade.from", rec.From), attribute.String("graft.upgrade.to", rec.To),
		attribute.String("graft.upgrade.outcome", rec.Outcome))
	endSpan(span, err)
}

// stage runs one stage of the op in a span of its own.
func (r *opRun) stage(ctx context.Context, name string, f func(context.Context) error) error {
	ctx, span := r.m.tracer.Start(ctx, "graft.upgrade."+name)
	err := f(ctx)
	endSpan(span, err)
	return err
}

// startGroup starts the span of the group-th group, of size actors.
func (m *Manager) startGroup(ctx context.Context, group, size int) (context.Context, trace.Span) {
	return m.tracer.Start(ctx, "graft.upgrade.group", trace.WithAttributes(
		attribute.Int("graft.upgrade.group.index", group), attribute.Int("graft.upgrade.group.size", size)))
}

// endGroup ends a group's span with how many actors it moved and how many
// were over the pause budget.
func endGroup(span trace.Span, moved, over int, err error) {
	span.SetAttributes(attribute.Int("graft.upgrade.group.moved", moved), attribute.Int("graft.upgrade.group.over_budget", over))
	endSpan(span, err)
}

// endSpan ends span, marking it failed with err when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
