package config_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/config"
)

func TestUpgradeSettingsLoad(t *testing.T) {
	path := writeConfig(t, `store: {path: d}
upgrade: {group_size: 8, max_pause: 20ms, over_budget: stop}
behaviours:
  counter:
    binary: ./plugins/counter
    upgrade: {canary: 10%, bake: 30s, failure_rate_increase: 2%, p99_ratio: 2, min_messages: 50, inconclusive: hold}
  listed:
    binary: ./plugins/counter
    upgrade: {canary: [a, b], bake: 1m}
  plain:
    binary: ./plugins/counter
`)
	cfg, err := config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, config.Upgrade{GroupSize: 8, MaxPause: 20 * time.Millisecond, OverBudget: "stop"}, cfg.Upgrade)
	assert.Equal(t, config.UpgradePolicy{CanaryShare: 0.1, Bake: 30 * time.Second, FailureRateIncrease: 0.02, P99Ratio: 2, MinMessages: 50, Inconclusive: "hold"},
		cfg.UpgradePolicies["counter"])
	assert.Equal(t, config.UpgradePolicy{CanaryActors: []string{"a", "b"}, Bake: time.Minute}, cfg.UpgradePolicies["listed"])
	assert.False(t, cfg.UpgradePolicies["plain"].HasCanary(), "no policy: every actor, in groups")
}

func TestUpgradeDefaults(t *testing.T) {
	cfg, err := config.Load(writeConfig(t, "store: {path: d}\n"))
	require.NoError(t, err)
	assert.Zero(t, cfg.Upgrade.MaxPause, "unset: the upgrade package's default")
	assert.Equal(t, "retry", cfg.Upgrade.OverBudget)
}

func TestBadUpgradeSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct{ body, key, says string }{
		{"canary: 0%, bake: 1s", "behaviours.counter.upgrade.canary", "above 0% and below 100%"},
		{"canary: 100%, bake: 1s", "behaviours.counter.upgrade.canary", "above 0% and below 100%"},
		{"canary: lots, bake: 1s", "behaviours.counter.upgrade.canary", "not a canary"},
		{"canary: [], bake: 1s", "behaviours.counter.upgrade.canary", "empty list"},
		{"canary: 10%", "behaviours.counter.upgrade.bake", "a canary needs a bake time"},
		{"bake: 10s", "behaviours.counter.upgrade.canary", "apply to a canary"},
		{"p99_ratio: 2", "behaviours.counter.upgrade.canary", "apply to a canary"},
		{"canary: 10%, bake: 1s, p99_ratio: 0.5", "behaviours.counter.upgrade.p99_ratio", "at least 1"},
		{"canary: 10%, bake: 1s, p99_ratio: NaN", "behaviours.counter.upgrade.p99_ratio", "at least 1"},
		{"canary: 10%, bake: 1s, failure_rate_increase: 200%", "behaviours.counter.upgrade.failure_rate_increase", "at most 100%"},
		{"canary: 10%, bake: 1s, min_messages: 0", "behaviours.counter.upgrade.min_messages", "at least 1"},
		{"canary: 10%, bake: -1s", "behaviours.counter.upgrade.bake", "must be positive"},
		{"canary: 10%, bake: 1s, inconclusive: wait", "behaviours.counter.upgrade.inconclusive", "hold"},
		{"inconclusive: hold", "behaviours.counter.upgrade.canary", "apply to a canary"},
		{"canary: 10%, bake: 1s, share: 3", "behaviours.counter.upgrade.share", "unknown key"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			_, err := config.Load(writeConfig(t, "store: {path: d}\nbehaviours:\n  counter:\n    binary: ./plugins/counter\n    upgrade: {"+tc.body+"}\n"))
			var cerr *config.Error
			require.True(t, errors.As(err, &cerr), "want config problems, got %v", err)
			found := false
			for _, p := range cerr.Problems {
				if p.Key == tc.key {
					found = true
					assert.Contains(t, p.Message, tc.says)
					assert.Positive(t, p.Line, "the problem names its line")
				}
			}
			assert.True(t, found, "no problem names %s: %v", tc.key, err)
		})
	}
	_, err := config.Load(writeConfig(t, "store: {path: d}\nbehaviours:\n  counter: {binary: ./plugins/counter, verify_window: 5000}\n"))
	require.ErrorContains(t, err, "behaviours.counter.verify_window: 5000 messages is over the 1000")
	_, err = config.Load(writeConfig(t, "store: {path: d}\nupgrade: {max_pause: 0s, over_budget: maybe}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "upgrade.max_pause")
	assert.Contains(t, err.Error(), "upgrade.over_budget")
}
