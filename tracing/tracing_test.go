package tracing_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/tracing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// Tracing is off unless the standard variables ask for it.
func TestEnabledOnlyWhenAsked(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_SERVICE_NAME": "x"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, tracing.Enabled(envOf(c.env)), "%v", c.env)
	}
}

// Off, FromEnv makes nothing; an exporter it does not know is one error
// that names the variable.
func TestFromEnv(t *testing.T) {
	ctx := context.Background()
	tp, err := tracing.FromEnv(ctx, envOf(nil), tracing.Service{})
	require.NoError(t, err)
	assert.Nil(t, tp)

	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin-please")
	_, err = tracing.FromEnv(ctx, envOf(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin-please"}), tracing.Service{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `OTEL_TRACES_EXPORTER="zipkin-please"`)

	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	tp, err = tracing.FromEnv(ctx, envOf(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), tracing.Service{Version: "v1.2.3", Instance: "m0"})
	require.NoError(t, err)
	require.NotNil(t, tp)
	require.NoError(t, tp.Shutdown(ctx))
}

// A value the SDK would take for something else is refused, with the
// variable at fault named: a protocol it does not know, an endpoint that
// is not a URL (the spans would go to localhost), a sampler it does not
// know (it would fall back to its default).
func TestValuesTheSDKWouldMisreadAreRefused(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"}, `OTEL_EXPORTER_OTLP_PROTOCOL="bogus"`},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "::not a url"}, `OTEL_EXPORTER_OTLP_ENDPOINT="::not a url" is not a collector's URL`},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"}, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="collector:4318" is not a collector's URL`},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "sometimes"}, `OTEL_TRACES_SAMPLER="sometimes" is not a sampler`},
	}
	for _, c := range cases {
		for k, v := range c.env {
			t.Setenv(k, v) // the SDK reads the process's environment
		}
		_, err := tracing.FromEnv(ctx, envOf(c.env), tracing.Service{})
		require.Error(t, err, "%v", c.env)
		assert.Contains(t, err.Error(), c.want)
		for k := range c.env {
			t.Setenv(k, "")
		}
	}
}

// A collector that is away costs a line in graft's log, with the spans
// lost, not a line per export on stderr.
func TestExportFailuresGoToTheLog(t *testing.T) {
	ctx := context.Background()
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TIMEOUT": "2000"}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var buf bytes.Buffer
	tp, err := tracing.FromEnv(ctx, envOf(env), tracing.Service{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	require.NoError(t, err)
	require.NotNil(t, tp)
	_, span := tp.Tracer("test").Start(ctx, "lost")
	span.End()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	assert.NoError(t, tp.Shutdown(sctx), "a failed export is logged, not returned")
	assert.Contains(t, buf.String(), "spans could not be sent to the collector")
	assert.Contains(t, buf.String(), "spans=1")
}
