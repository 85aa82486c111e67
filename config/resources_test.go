package config_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/dynamic"
)

// TestBehaviourLimits: memory, pids and cpu_weight under a behaviour reach
// core.BehaviourConfig, in systemd's units.
func TestBehaviourLimits(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want dynamic.Resources
	}{
		{"{binary: plugins/counter, memory: 64MiB}", dynamic.Resources{Memory: 64 << 20}},
		{"{binary: plugins/counter, memory: 2G, pids: 100, cpu_weight: 50}", dynamic.Resources{Memory: 2 << 30, Pids: 100, CPUWeight: 50}},
		{"{binary: plugins/counter, memory: 100MB}", dynamic.Resources{Memory: 100e6}},
		{"{binary: plugins/counter, memory: 33554432}", dynamic.Resources{Memory: 32 << 20}},
		{"{binary: plugins/counter}", dynamic.Resources{}},
	} {
		cfg, err := config.Load(writeConfig(t, "store: {path: d}\nbehaviours:\n  counter: "+tc.yaml+"\n"))
		require.NoError(t, err, tc.yaml)
		assert.Equal(t, tc.want, cfg.Behaviours["counter"].Resources, tc.yaml)
		assert.Equal(t, tc.want, cfg.Core(slog.New(slog.DiscardHandler), nil).Behaviours["counter"].Resources, "carried into the core's config")
	}
}

// TestBadLimitsAndEnvAreReported: each wrong limit or env entry is one
// problem naming its line and key.
func TestBadLimitsAndEnvAreReported(t *testing.T) {
	body := `store: {path: d}
behaviours:
  counter:
    binary: plugins/counter
    memory: lots
    pids: 3
    cpu_weight: 20000
    env: ["A=1", "GRAFT_LIVENESS_FD=7", "A=2", "9LIVES=x", "=v"]
  other:
    binary: plugins/counter
    memory: 1MiB
    pids: many
`
	_, err := config.Load(writeConfig(t, body))
	var cerr *config.Error
	require.True(t, errors.As(err, &cerr), "%v", err)
	t.Log(err)
	want := []struct {
		line      int
		key, text string
	}{
		{5, "behaviours.counter.memory", "not a memory size"},
		{6, "behaviours.counter.pids", "out of range: give 16 to"},
		{7, "behaviours.counter.cpu_weight", "out of range: give 1 to 10000"},
		{8, "behaviours.counter.env[1]", "set by graft"},
		{8, "behaviours.counter.env[2]", "already set by behaviours.counter.env[0]"},
		{8, "behaviours.counter.env[3]", "not a variable name"},
		{8, "behaviours.counter.env[4]", "no variable name"},
		{11, "behaviours.other.memory", "too small"},
		{12, "behaviours.other.pids", "not a whole number"},
	}
	for _, w := range want {
		found := false
		for _, p := range cerr.Problems {
			if p.Key == w.key && p.Line == w.line && strings.Contains(p.Message, w.text) {
				found = true
			}
		}
		assert.True(t, found, "problem at line %d %s (%s)", w.line, w.key, w.text)
	}
	assert.Len(t, cerr.Problems, len(want))
}
