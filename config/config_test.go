package config_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/config"
	"github.com/graft-host/graft/core/supervisor"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// writeConfig writes body as dir/graft.yaml next to an executable fake
// plugin dir/plugins/counter and returns the config's path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "plugins"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plugins", "counter"), []byte("#!/bin/sh\n"), 0o755))
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

func TestExampleLoads(t *testing.T) {
	body, err := os.ReadFile("testdata/full.yaml")
	require.NoError(t, err)
	path := writeConfig(t, string(body))
	dir := filepath.Dir(path)

	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "data"), cfg.Store.Path)
	assert.Equal(t, mailbox.DurabilitySync, cfg.Store.Durability)
	assert.Equal(t, filepath.Join(dir, "run", "graft.sock"), cfg.Control.Socket)
	assert.Equal(t, 1<<20, cfg.Limits.MaxMessageSize)
	assert.Equal(t, 5, cfg.Limits.MaxAttempts)
	assert.Equal(t, supervisor.OneForOne, cfg.Supervision.Strategy)
	assert.Equal(t, 3, cfg.Supervision.MaxRestarts)
	assert.Equal(t, 100*time.Millisecond, cfg.Supervision.BackoffMin)
	b := cfg.Behaviours["counter"]
	assert.Equal(t, filepath.Join(dir, "plugins", "counter"), b.Binary)
	assert.Equal(t, 30*time.Second, b.HandleTimeout)
	assert.Equal(t, 5*time.Second, b.StopTimeout)
	assert.Equal(t, []string{"COUNTER_DEBUG=1", "AWS_REGION"}, b.Env)
	assert.Equal(t, dynamic.Resources{Memory: 256 << 20, Pids: 64, CPUWeight: 100}, b.Resources)
	assert.Equal(t, 5*time.Minute, b.PassivateAfter)
	assert.Equal(t, 16, b.VerifyWindow)
	assert.Equal(t, 5*time.Minute, cfg.Core(slog.Default(), nil).Behaviours["counter"].PassivateAfter, "the key reaches core.Config")
	assert.Equal(t, config.UpgradePolicy{CanaryShare: 0.1, Bake: 30 * time.Second, FailureRateIncrease: 0.01, P99Ratio: 1.5, MinMessages: 20},
		cfg.UpgradePolicies["counter"])
	assert.Equal(t, config.Upgrade{GroupSize: 64, MaxPause: 50 * time.Millisecond, OverBudget: "retry"}, cfg.Upgrade)
	require.Len(t, cfg.Actors, 2)
	assert.Equal(t, []string{"hits"}, cfg.Actors[1].Requires)
	assert.True(t, cfg.Actors[1].OwnProcess)
	assert.False(t, cfg.Actors[0].OwnProcess)

	sock, err := config.Socket(path)
	require.NoError(t, err)
	assert.Equal(t, cfg.Control.Socket, sock)
}

func TestMinimalConfigGetsDefaults(t *testing.T) {
	path := writeConfig(t, "store: {path: /var/lib/graft}\n")
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/graft", cfg.Store.Path)
	assert.Equal(t, filepath.Join(filepath.Dir(path), "run", "graft.sock"), cfg.Control.Socket)
	assert.Equal(t, 64, cfg.Limits.BatchSize)
}

func TestMaxRestartsZeroMeansNoRestart(t *testing.T) {
	path := writeConfig(t, "store: {path: d}\nsupervision: {max_restarts: 0}\n")
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, -1, cfg.Supervision.MaxRestarts)
}

// TestEveryProblemReported: each error case names its line and key, and
// one file with all of them reports all of them at once.
func TestEveryProblemReported(t *testing.T) {
	const body = `store:
  path: ./data
  durability: fast
  colour: blue
control:
  dir: ./run
limits:
  max_message_size: lots
  max_attempts: 0
supervision:
  strategy: one_for_some
  period: 5
  backoff_min: 10s
  backoff_max: 1s
behaviours:
  counter:
    binary: ./plugins/counter
    sha256: abc
  ghost:
    binary: ./plugins/ghost
  nobin:
    start_timeout: 1s
actors:
  - name: a
    behaviour: counter
    requires: [c]
  - name: a
    behaviour: counter
  - name: b
    behaviour: nosuch
    process: separate
  - name: c
    behaviour: counter
    requires: [d]
  - name: d
    behaviour: counter
    requires: [a, zed]
  - behaviour: counter
    restart: sometimes
    extra: 1
`
	path := writeConfig(t, body)
	_, err := config.Load(path)
	require.Error(t, err)
	var cerr *config.Error
	require.True(t, errors.As(err, &cerr), "a *config.Error, got %T: %v", err, err)
	msg := err.Error()
	t.Log(msg)

	want := []struct {
		line int
		key  string
		text string
	}{
		{3, "store.durability", `"fast" is not one of relaxed, sync`},
		{4, "store.colour", "unknown key"},
		{8, "limits.max_message_size", "not a size"},
		{9, "limits.max_attempts", "at least 1"},
		{11, "supervision.strategy", "not one of"},
		{12, "supervision.period", "not a duration"},
		{13, "supervision.backoff_min", "longer than backoff_max"},
		{18, "behaviours.counter.sha256", "not a sha256"},
		{20, "behaviours.ghost.binary", "does not exist"},
		{21, "behaviours.nobin.binary", "missing"},
		{27, "actors[1].name", `duplicate actor "a"`},
		{30, "actors[2].behaviour", `unknown behaviour "nosuch"`},
		{31, "actors[2].process", "not one of own, shared"},
		{37, "actors[4].requires", `unknown actor "zed"`},
		{38, "actors[5].name", "missing"},
		{39, "actors[5].restart", "not one of"},
		{40, "actors[5].extra", "unknown key"},
		{26, "actors[0].requires", "requirement cycle a -> c -> d -> a"},
	}
	for _, w := range want {
		found := false
		for _, p := range cerr.Problems {
			if p.Key == w.key && strings.Contains(p.Message, w.text) {
				found = true
				assert.Equal(t, w.line, p.Line, "line of %s", w.key)
			}
		}
		assert.True(t, found, "problem %s (%s) reported", w.key, w.text)
		assert.Contains(t, msg, "graft.yaml:", "the message names the file and line")
	}
	assert.Len(t, cerr.Problems, len(want), "no unexpected problems")
}

func TestSyntaxErrorAndEmptyFile(t *testing.T) {
	_, err := config.Load(writeConfig(t, "store:\n  path: [unclosed\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not valid YAML")
	assert.Contains(t, err.Error(), "line")

	_, err = config.Load(writeConfig(t, ""))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty")

	_, err = config.Load(writeConfig(t, "behaviours: {}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store.path: missing")
}

func TestMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestNonExecutableBinary(t *testing.T) {
	path := writeConfig(t, "store: {path: d}\nbehaviours:\n  counter: {binary: plugins/counter}\n")
	require.NoError(t, os.Chmod(filepath.Join(filepath.Dir(path), "plugins", "counter"), 0o644))
	_, err := config.Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "graft.yaml:3: behaviours.counter.binary:")
	assert.Contains(t, err.Error(), "not executable")
}

func TestSocketPathTooLong(t *testing.T) {
	path := writeConfig(t, "store: {path: d}\ncontrol: {dir: /tmp/"+strings.Repeat("x", 120)+"}\n")
	_, err := config.Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "graft.yaml:2: control.dir:")
	_, err = config.Socket(path)
	require.Error(t, err, "a client cannot use the socket either")
}

// TestSocketIgnoresOtherSections: a client finds the core even while the
// rest of the file is broken.
func TestSocketIgnoresOtherSections(t *testing.T) {
	path := writeConfig(t, "store: {path: d}\ncontrol: {dir: r}\nactors:\n  - {name: x, behaviour: missing}\n")
	sock, err := config.Socket(path)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(filepath.Dir(path), "r", "graft.sock"), sock)
}

func TestSizesAndDurability(t *testing.T) {
	path := writeConfig(t, "store: {path: d, durability: relaxed}\nlimits: {max_message_size: 64KiB}\n")
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, 64<<10, cfg.Limits.MaxMessageSize)
	assert.Equal(t, mailbox.DurabilityRelaxed, cfg.Store.Durability)
}

// A size whose multiplication overflows is out of range, not wrapped into
// something that looks valid.
func TestHugeSizeIsOutOfRange(t *testing.T) {
	path := writeConfig(t, "store: {path: d}\nlimits: {max_message_size: 17179869185GiB}\n")
	_, err := config.Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "limits.max_message_size")
	assert.Contains(t, err.Error(), "out of range")
}

// A virtual behaviour owns the names BEHAVIOUR/KEY: the key reaches the
// core, and its mistakes are reported with their line and key (a bad
// value, a name with "/", an actor of another behaviour in its namespace);
// an actor of the behaviour itself may have such a name.
func TestVirtualBehaviour(t *testing.T) {
	path := writeConfig(t, `store: {path: d}
behaviours:
  counter: {binary: plugins/counter, virtual: true}
  plain: {binary: plugins/counter}
actors:
  - {name: counter/home, behaviour: counter}
  - {name: plain/x, behaviour: plain}
`)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.True(t, cfg.Behaviours["counter"].Virtual)
	assert.False(t, cfg.Behaviours["plain"].Virtual)
	assert.True(t, cfg.Core(slog.Default(), nil).Behaviours["counter"].Virtual, "the key reaches core.Config")

	path = writeConfig(t, `store: {path: d}
behaviours:
  counter: {binary: plugins/counter, virtual: maybe}
  a/b: {binary: plugins/counter, virtual: true}
  account:
    binary: plugins/counter
    virtual: true
actors:
  - {name: account/alice, behaviour: counter}
  - {name: account/bob, behaviour: account}
  - {name: account/, behaviour: counter}
`)
	_, err = config.Load(path)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr)
	t.Log(err)
	want := []struct {
		line      int
		key, text string
	}{
		{3, "behaviours.counter.virtual", `"maybe" is not one of false, true`},
		{4, "behaviours.a/b.virtual", `cannot contain "/"`},
		{9, "actors[0].name", `actor "account/alice" is in the namespace of virtual behaviour "account" (declared virtual on line 7`},
	}
	for _, w := range want {
		found := false
		for _, p := range cerr.Problems {
			if p.Key == w.key && strings.Contains(p.Message, w.text) {
				found = true
				assert.Equal(t, w.line, p.Line, "line of %s", w.key)
			}
		}
		assert.True(t, found, "problem %s (%s) reported", w.key, w.text)
	}
	assert.Len(t, cerr.Problems, len(want), "account/bob (its own namespace) and account/ (no key) are fine")
}
