package host

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/graft-host/graft/internal/buildinfo"
	"github.com/graft-host/graft/tracing"
)

// startTracing picks the tracer provider the core and the upgrade manager
// trace into: Options.Tracing, else the one the OTEL_* environment asks for
// (package tracing), else none. A provider made here is the host's to
// flush and stop (stopTracing).
func (h *Host) startTracing(ctx context.Context, p *parts) error {
	if h.opts.Tracing != nil {
		p.tracing = h.opts.Tracing
		return nil
	}
	tp, err := tracing.FromEnv(ctx, os.Getenv, tracing.Service{Version: buildinfo.Read().Version, Instance: h.cfg.Cluster.Member, Logger: h.log.With("component", "tracing")})
	if err != nil {
		return fmt.Errorf("graft refuses to start: %w", err)
	}
	if tp != nil {
		p.tracing, p.ownTracing = tp, tp
		h.log.Info("tracing with OpenTelemetry, as the OTEL_* environment says")
	}
	return nil
}

// tracingFlushTimeout bounds the flush of the last spans at the stop: a
// collector that accepts connections and never answers must not hold the
// stop past the watchdog (grace + 2 s), nor fail it.
const tracingFlushTimeout = time.Second

// stopTracing flushes the spans of a provider the host made, within
// tracingFlushTimeout. Spans that cannot be sent are lost with a warning:
// telemetry never fails a stop.
func (p *parts) stopTracing() {
	if p.ownTracing == nil {
		return
	}
	tp := p.ownTracing
	p.ownTracing = nil
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		p.log.Warn("tracing: the last spans could not be sent to the collector; they are lost", "within", tracingFlushTimeout, "err", err)
	}
}

// tracerOf is the provider p traces into, nil for none (so that the core
// and the manager skip the work).
func (p *parts) tracerOf() trace.TracerProvider {
	return p.tracing
}
