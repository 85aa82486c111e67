package tracing_test

import (
	"context"
	"testing"

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
