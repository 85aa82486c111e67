// Package tracing turns on OpenTelemetry tracing for a graft core from the
// standard OTEL_* environment variables, and is off unless they ask for it.
//
// Tracing is on when OTEL_TRACES_EXPORTER names an exporter other than
// "none", or when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (then the exporter is OTLP);
// OTEL_SDK_DISABLED=true turns it off whatever else is set. Everything
// else is the OpenTelemetry SDK's to read, as its specification says:
// the protocol (OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf by default, or
// grpc), headers, TLS, the sampler (OTEL_TRACES_SAMPLER), the batch
// processor (OTEL_BSP_*) and the resource (OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES). The exporter comes from the OpenTelemetry
// project's own autoexport, so graft reads these variables exactly as
// other OpenTelemetry programs do; this package only decides whether
// tracing is on and names graft's resource.
//
// The spans themselves are made where the work is: core (sends, calls,
// batches and messages, with the trace context carried inside each
// message) and upgrade (each op, its stages and its groups).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ServiceName is the service.name of graft's spans unless OTEL_SERVICE_NAME
// or OTEL_RESOURCE_ATTRIBUTES says otherwise.
const ServiceName = "graft"

// Service describes the core that traces, for its resource.
type Service struct {
	// Version is graft's version (service.version).
	Version string
	// Instance tells the cores of one service apart
	// (service.instance.id): the cluster member's name, or empty.
	Instance string
	// Logger receives the exporter's failures (a collector away): at most
	// a line per exportFailureEvery, with the count of spans lost. Nil
	// discards them.
	Logger *slog.Logger
}

// Provider is a tracer provider made from the environment, with the
// exporter it owns.
type Provider struct {
	*sdktrace.TracerProvider
}

// Shutdown flushes the spans not yet exported and stops the exporter,
// within ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	if err := p.TracerProvider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush the last spans: %w", err)
	}
	return nil
}

// Enabled says whether getenv asks for tracing (see the package doc).
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" {
		return e != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// FromEnv is the tracer provider the process environment asks for, or nil
// when it asks for none (Enabled). An exporter that cannot be made is an
// error that names the variables to fix.
func FromEnv(ctx context.Context, getenv func(string) string, svc Service) (*Provider, error) {
	if !Enabled(getenv) {
		return nil, nil
	}
	if err := checkEnv(getenv); err != nil {
		return nil, err
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: %s: %w (OTEL_TRACES_EXPORTER is otlp, console or none; OTEL_EXPORTER_OTLP_PROTOCOL is grpc or http/protobuf)",
			setVars(getenv, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, nil
	}
	logger := svc.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	exp = &loggedExporter{SpanExporter: exp, log: logger}
	attrs := []resource.Option{resource.WithAttributes(semconv.ServiceName(ServiceName))}
	if svc.Version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(svc.Version)))
	}
	if svc.Instance != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceInstanceID(svc.Instance)))
	}
	// The environment's attributes come last, so that they win.
	res, err := resource.New(ctx, append(attrs, resource.WithTelemetrySDK(), resource.WithFromEnv())...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return &Provider{sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))}, nil
}

// samplers are the OTEL_TRACES_SAMPLER values the Go SDK knows; with any
// other it would fall back to its default with a line on stderr.
var samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// checkEnv refuses the values the SDK would take silently for something
// else: an endpoint that is not a URL (the spans would go to localhost),
// a sampler it does not know.
func checkEnv(getenv func(string) string) error {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("tracing: %s=%q is not a collector's URL: give one such as http://collector:4318 (http/protobuf) or http://collector:4317 (grpc)", name, v)
		}
	}
	if v := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")); v != "" && !slices.Contains(samplers, v) {
		return fmt.Errorf("tracing: OTEL_TRACES_SAMPLER=%q is not a sampler: give one of %s", v, strings.Join(samplers, ", "))
	}
	return nil
}

// setVars lists the variables of names that are set, as NAME="value",
// for an error about them.
func setVars(getenv func(string) string, names ...string) string {
	var out []string
	for _, n := range names {
		if v := getenv(n); v != "" {
			out = append(out, fmt.Sprintf("%s=%q", n, v))
		}
	}
	if len(out) == 0 {
		return "the OTLP exporter"
	}
	return strings.Join(out, ", ")
}

// exportFailureEvery bounds how often a failing exporter is logged.
const exportFailureEvery = 30 * time.Second

// loggedExporter reports the exporter's failures in graft's log, a line
// per exportFailureEvery with the spans lost since the last, instead of
// returning them to the SDK, whose handler would print each one on
// stderr through the process-wide log package.
type loggedExporter struct {
	sdktrace.SpanExporter
	log *slog.Logger

	mu     sync.Mutex
	last   time.Time
	missed int
}

// ExportSpans exports spans; a failure is logged (rate-limited) and the
// spans are dropped, as the SDK would drop them.
func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.missed += len(spans)
	if now := time.Now(); now.Sub(e.last) >= exportFailureEvery {
		e.log.Warn("tracing: spans could not be sent to the collector; they are dropped", "spans", e.missed, "err", err)
		e.last, e.missed = now, 0
	}
	return nil
}
