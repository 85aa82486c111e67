package upgrade_test

import (
	"context"
	"slices"
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
