package upgrade_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/upgrade"
)

// states reads every actor's committed state and registry versions.
func (s *system) snapshot(t *testing.T) map[string]mailbox.State {
	t.Helper()
	out := map[string]mailbox.State{}
	for _, a := range s.actors {
		st, err := s.core.Store().State(context.Background(), a)
		require.NoError(t, err)
		rec, err := s.core.Store().Actor(context.Background(), a)
		require.NoError(t, err)
		st.Module += "/" + rec.Module // the registry's version too
		out[a] = st
	}
	return out
}

// A dry run against 20 actors finds exactly the 3 whose state a planted
// bad migration cannot take, changes no state or version, is recorded,
// and blocks a later upgrade to that binary unless forced.
func TestDryRunFindsTheActorsItCannotMigrate(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 20, upgrade.Options{})
	ctx := ctxFor(t, time.Minute)
	bad := []string{"kv3", "kv11", "kv17"}
	for _, a := range s.actors {
		payload := "one"
		if slices.Contains(bad, a) {
			payload = "nomigrate"
		}
		_, err := s.core.Call(ctx, a, []byte(payload), core.SendOptions{})
		require.NoError(t, err)
	}
	before := s.snapshot(t)

	rep, err := s.mgr.DryRun(ctx, "kv", bin("kv2-marked"))
	require.NoError(t, err)
	t.Log(rep.Summary())
	assert.Equal(t, 20, rep.Actors)
	assert.Equal(t, 17, rep.Migrated)
	assert.Equal(t, 17, rep.RoundTrip)
	require.Len(t, rep.Failures["migration failed"], 3, "%v", rep.Failures)
	var failed []string
	for _, f := range rep.Failures["migration failed"] {
		failed = append(failed, f.Actor)
		assert.Contains(t, f.Detail, "marked not to migrate")
	}
	assert.ElementsMatch(t, bad, failed)
	assert.Equal(t, before, s.snapshot(t), "a dry run changes nothing")
	hist := s.history(t)
	require.NotEmpty(t, hist)
	last := hist[len(hist)-1]
	assert.Equal(t, "dry-run", last.Kind)
	assert.Equal(t, "failed", last.Outcome)
	assert.Contains(t, last.Error, "migration failed 3")
	assert.Equal(t, 20, last.Actors, "the history says how many actors the dry run covered")

	_, err = s.mgr.Upgrade(ctx, "kv", bin("kv2-marked"))
	require.ErrorIs(t, err, upgrade.ErrDryRunFailed)
	assert.Equal(t, before, s.snapshot(t), "the refused upgrade moved nothing")
	reply, err := s.core.Call(ctx, "kv0", []byte("two"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v1:2", string(reply), "v1 still serves")

	s.stop() // the verdict is journaled: a restarted core refuses too
	s = boot(t, dir, 20, upgrade.Options{})
	_, err = s.mgr.Upgrade(ctx, "kv", bin("kv2-marked"))
	require.ErrorIs(t, err, upgrade.ErrDryRunFailed)
}

// A dry run of a good binary passes every actor, round trip included, and
// the upgrade after it runs; one whose migration panics, or that has no
// way back down, is reported by kind.
func TestDryRunReportsEachKindOfFailure(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 4, upgrade.Options{})
	ctx := ctxFor(t, time.Minute)
	for _, a := range s.actors[:3] {
		_, err := s.core.Call(ctx, a, []byte("one"), core.SendOptions{})
		require.NoError(t, err)
	}
	for bin, kind := range map[string]string{bin("kv2-panic"): "migration panicked", bin("kv2-nodown"): "no down-migration"} {
		rep, err := s.mgr.DryRun(ctx, "kv", bin)
		require.NoError(t, err)
		assert.Len(t, rep.Failures[kind], 3, "%s: %s", bin, rep.Summary())
		assert.Equal(t, 3, rep.Counts[kind])
		assert.Equal(t, 1, rep.NoState)
	}
	rep, err := s.mgr.DryRun(ctx, "kv", bin("kv2-nodown"))
	require.NoError(t, err)
	assert.Zero(t, rep.Blocking(), "no way down is a warning: the upgrade takes the actors")

	cut, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.mgr.DryRun(cut, "kv", bin("kv2-hang"))
	require.ErrorIs(t, err, context.Canceled, "a dry run cut short")
	_, err = s.mgr.Upgrade(ctx, "kv", bin("kv2-hang"))
	require.NotErrorIs(t, err, upgrade.ErrDryRunFailed, "a dry run cut short records no verdict")
	rep, err = s.mgr.DryRun(ctx, "kv", bin("kv2"))
	require.NoError(t, err)
	assert.Zero(t, rep.Failed(), rep.Summary())
	assert.Equal(t, 3, rep.RoundTrip)
	rec, err := s.mgr.Upgrade(ctx, "kv", bin("kv2"))
	require.NoError(t, err)
	assert.Equal(t, "completed", rec.Outcome)
}

// A dry run over 1,000 actors that keep their recent traffic
// (verify_window) replays it on the new version: it finds the 3 actors
// whose state a planted bad migration cannot take, every message of the
// one kind the new version fails, the replies that differ (v2 answers
// "v2:N" where v1 said "v1:N"), and changes nothing.
func TestDryRunReplaysRecentTraffic(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	const n = 1000
	s := bootWith(t, dir, n, upgrade.Options{}, func(c *core.Config) {
		b := c.Behaviours["kv"]
		b.VerifyWindow = 4
		c.Behaviours["kv"] = b
	})
	ctx := ctxFor(t, 5*time.Minute)
	bad := []string{"kv3", "kv411", "kv917"}
	for i, a := range s.actors {
		first := fmt.Sprintf("put-%d", i)
		if slices.Contains(bad, a) {
			first = "nomigrate"
		}
		for _, p := range []string{first, fmt.Sprintf("get-%d", i)} {
			_, err := s.core.Send(ctx, a, []byte(p), core.SendOptions{})
			require.NoError(t, err)
		}
	}
	waitFor(t, time.Minute, "every message handled", func() bool { return s.drained(s.actors...) })
	before := s.snapshot(t)

	rep, err := s.mgr.DryRun(ctx, "kv", bin("kv2-marked-getfail"))
	require.NoError(t, err)
	t.Log(rep.Summary())
	require.Len(t, rep.Failures["migration failed"], 3)
	require.NotNil(t, rep.Replay)
	r := rep.Replay
	// Each actor's two messages were kept (one batch each, or one of
	// two). The 3 marked actors' batches after "nomigrate" cannot start
	// from a migrated state; every other get fails on purpose.
	assert.GreaterOrEqual(t, r.Counts["replay failed"], n-3, "every get the new version fails")
	assert.LessOrEqual(t, r.Counts["replay failed"], n+3)
	var getFailures int
	for _, f := range r.Examples["replay failed"] {
		if strings.Contains(f.Detail, `"get-`) && strings.Contains(f.Detail, "v2 fails every get on purpose") {
			getFailures++
		}
	}
	assert.Positive(t, getFailures, "the examples name the failing kind: %v", r.Examples["replay failed"][:3])
	assert.GreaterOrEqual(t, r.Counts["replies differ"], n-3, "v2 replies v2:N to every put")
	assert.Contains(t, r.Examples["replies differ"][0].Detail, `"v1:1" -> "v2:1"`)
	assert.Zero(t, r.Counts["state differs"], "the puts v2 handles leave the state its migration makes")
	assert.Positive(t, rep.Blocking(), "replay failures block the upgrade")
	assert.Equal(t, before, s.snapshot(t), "a dry run changes nothing")
	_, err = s.mgr.Upgrade(ctx, "kv", bin("kv2-marked-getfail"))
	require.ErrorIs(t, err, upgrade.ErrDryRunFailed)
}
