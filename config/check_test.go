package config_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/dynamic"
)

// TestConfigBuiltInGoIsHeldToTheFilesRules: Defaults gives what a file
// naming only store.path and control.dir gives, Check accepts it once it
// is complete, and refuses each mistake decoding a file would have caught,
// named by key.
func TestConfigBuiltInGoIsHeldToTheFilesRules(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "counter")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	fromFile, err := config.Load(writeConfig(t, "store: {path: ./data}\ncontrol: {dir: ./run}\n"))
	require.NoError(t, err)

	cfg := config.Defaults(filepath.Join(dir, "data"), filepath.Join(dir, "run"))
	assert.Equal(t, fromFile.Limits, cfg.Limits)
	assert.Equal(t, fromFile.Supervision, cfg.Supervision)
	assert.Equal(t, fromFile.Store.Durability, cfg.Store.Durability)
	assert.Equal(t, config.Control{Dir: filepath.Join(dir, "run"), Socket: filepath.Join(dir, "run", "graft.sock"),
		PluginSockets: filepath.Join(dir, "run", "p")}, cfg.Control)
	assert.Equal(t, filepath.Join(dir, "data", "modules"), cfg.BinaryCacheDir())
	cfg.Behaviours["counter"] = core.BehaviourConfig{Binary: bin}
	cfg.Actors = []core.ActorConfig{{Name: "hits", Behaviour: "counter"}}
	require.NoError(t, cfg.Check())
	assert.Equal(t, cfg.Control.PluginSockets, cfg.Core(slog.Default(), nil).SocketDir, "plugins' sockets go under control.dir/p")

	cfg.Control.Socket = filepath.Join(dir, "elsewhere.sock")
	cfg.Behaviours["counter"] = core.BehaviourConfig{Binary: "plugins/counter", Env: []string{"A=1", "A=2", "=x"},
		Resources: dynamic.Resources{Memory: 1 << 20, CPUWeight: 20000}, StartTimeout: -1}
	cfg.Actors = append(cfg.Actors, core.ActorConfig{Behaviour: "counter"})
	err = cfg.Check()
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	assert.Empty(t, cerr.File)
	keys := map[string]bool{}
	for _, p := range cerr.Problems {
		keys[p.Key] = true
		assert.Zero(t, p.Line, "a config built in Go has no lines")
	}
	for _, k := range []string{"control", "behaviours.counter.binary", "behaviours.counter.env[1]", "behaviours.counter.env[2]",
		"behaviours.counter.memory", "behaviours.counter.cpu_weight", "behaviours.counter.start_timeout", "actors[1].name"} {
		assert.True(t, keys[k], "%s is reported in:\n%v", k, err)
	}
	assert.NotContains(t, err.Error(), ":0:")
}
