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
	"strings"

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
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: %w (give otlp, console or none; OTEL_EXPORTER_OTLP_PROTOCOL is grpc or http/protobuf)",
			getenv("OTEL_TRACES_EXPORTER"), err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, nil
	}
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
