package upgrade_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/upgrade"
)

// inFlight says whether actor has a batch in flight.
func (s *system) inFlight(t testing.TB, actor string) bool {
	t.Helper()
	rows, err := s.core.Status(ctxFor(t, 5*time.Second))
	require.NoError(t, err)
	i := slices.IndexFunc(rows, func(r core.ActorStatus) bool { return r.Name == actor })
	require.GreaterOrEqual(t, i, 0, "actor %s", actor)
	return rows[i].InFlight > 0
}

// touch has every actor handle "before", so that each has a state.
func (s *system) touch(t *testing.T) {
	t.Helper()
	for _, a := range s.actors {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("before"), core.SendOptions{})
		require.NoError(t, err)
	}
}

// busyWith sends actor a message that takes ms to handle and waits until
// it is in flight.
func (s *system) busyWith(t *testing.T, actor, ms string) {
	t.Helper()
	_, err := s.core.Send(ctxFor(t, 10*time.Second), actor, []byte("sleep:"+ms), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 10*time.Second, actor+"'s long batch in flight", func() bool { return s.inFlight(t, actor) })
}

// An actor whose batch in flight outlasts the pause budget is not held
// for it: it goes on serving on the old version, the others move, and
// after the retries the upgrade fails naming it. Nothing is lost.
func TestActorOverThePauseBudgetStaysOnTheOldVersion(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 3, upgrade.Options{MaxPause: 100 * time.Millisecond})
	s.touch(t)
	s.busyWith(t, "kv0", "3000")
	install(t, "kv2", s.source)
	started := time.Now()
	rec, err := s.mgr.Upgrade(ctxFor(t, 60*time.Second), "kv", "")
	require.ErrorIs(t, err, upgrade.ErrOverBudget)
	assert.Less(t, time.Since(started), 3*time.Second, "the upgrade did not wait for the long batch")
	assert.Contains(t, err.Error(), "kv0 (drain over")
	assert.Contains(t, err.Error(), "still so after 3 retries, with 2 of 3 actors moved")
	assert.Contains(t, err.Error(), "raise upgrade.max_pause")
	assert.Equal(t, "failed", rec.Outcome)
	assert.True(t, s.inFlight(t, "kv0"), "kv0 was never paused: its batch is still running")
	waitFor(t, 20*time.Second, "kv0's long batch", func() bool { return s.drained("kv0") })
	st := s.state(t, "kv0")
	assert.Equal(t, "1.0.0", st.Module, "kv0 stays where it was")
	assert.Equal(t, []string{"before", "sleep:3000"}, st.Applied, "its message applied once")
	for _, a := range []string{"kv1", "kv2"} {
		assert.Equal(t, "2.0.0", s.state(t, a).Module, a)
	}
	for _, step := range rec.Steps {
		assert.NotEqual(t, "kv0", step.Actor, "kv0 has no pause in the history: it did not move")
	}
}

// A drain that met a long batch is retried after the others moved, and
// moves once the batch is done; its recorded pause is within the budget.
func TestActorOverBudgetIsRetried(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	const budget = 400 * time.Millisecond // a drain waits 200 ms at most
	s := boot(t, dir, 3, upgrade.Options{MaxPause: budget})
	s.touch(t)
	s.busyWith(t, "kv0", "300")
	install(t, "kv2", s.source)
	rec, err := s.mgr.Upgrade(ctxFor(t, 60*time.Second), "kv", "")
	require.NoError(t, err)
	assert.Equal(t, "completed", rec.Outcome)
	for _, a := range s.actors {
		assert.Equal(t, "2.0.0", s.state(t, a).Module, a)
	}
	assert.Equal(t, []string{"before", "sleep:300"}, s.state(t, "kv0").Applied)
	for _, step := range rec.Steps {
		if step.Step == "pause" {
			assert.LessOrEqual(t, step.Duration, budget+50*time.Millisecond, "%s's pause (the commit may add a little)", step.Actor)
		}
	}
}

// With over_budget: stop no actor starts moving after one was over
// budget (those already moving finish).
func TestStopOverBudget(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 4, upgrade.Options{MaxPause: 100 * time.Millisecond, StopOverBudget: true, GroupSize: 1})
	s.busyWith(t, "kv1", "3000")
	install(t, "kv2", s.source)
	rec, err := s.mgr.Upgrade(ctxFor(t, 60*time.Second), "kv", "")
	require.ErrorIs(t, err, upgrade.ErrOverBudget)
	assert.Contains(t, err.Error(), "upgrade.over_budget: stop")
	assert.Equal(t, "failed", rec.Outcome)
	var moved []string
	for _, step := range rec.Steps {
		if step.Step == "pause" {
			moved = append(moved, step.Actor)
		}
	}
	assert.Equal(t, []string{"kv0"}, moved, "one at a time: kv0 moved, kv1 was over budget, nothing after it")
}

// A canary that starts from an upgrade stopped part-way, and is rolled
// back, leaves the actors outside it on the versions they ran: a restarted
// core runs each on a version that reads its state.
func TestCanaryRolledBackAfterAPartialUpgrade(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	opts := upgrade.Options{MaxPause: 100 * time.Millisecond, StopOverBudget: true, GroupSize: 2}
	s := boot(t, dir, 4, opts)
	s.touch(t)
	s.busyWith(t, "kv2", "2000")
	_, err := s.mgr.Upgrade(ctxFor(t, 60*time.Second), "kv", bin("kv2"))
	require.ErrorIs(t, err, upgrade.ErrOverBudget)
	waitFor(t, 20*time.Second, "kv2's long batch", func() bool { return s.drained("kv2") })
	versions := func() map[string]string {
		out := map[string]string{}
		for _, a := range s.actors {
			out[a] = s.state(t, a).Module
		}
		return out
	}
	require.Equal(t, map[string]string{"kv0": "2.0.0", "kv1": "2.0.0", "kv2": "1.0.0", "kv3": "2.0.0"}, versions())

	plan, err := upgrade.ParseCanary("kv0", time.Hour)
	require.NoError(t, err)
	done := s.startBaking(t, "kv3", plan)
	require.NoError(t, s.mgr.Decide("kv", upgrade.DecisionAbort))
	var rolled *upgrade.CanaryRolledBackError
	require.ErrorAs(t, <-done, &rolled)
	require.Equal(t, map[string]string{"kv0": "1.0.0", "kv1": "2.0.0", "kv2": "1.0.0", "kv3": "2.0.0"}, versions())

	s.stop()
	s = boot(t, dir, 4, opts)
	for _, a := range s.actors {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("after"), core.SendOptions{})
		require.NoError(t, err, "actor %s after the restart", a)
	}
}

// With rollback on failure, the actors moved back are the ones that
// moved, whatever their place: here kv0 and kv2, around kv1, which was
// over budget and left where it was, before kv3's migration failed.
func TestMoveBackAfterAnActorOverBudget(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 4, upgrade.Options{MaxPause: 100 * time.Millisecond, GroupSize: 1, RollbackOnFailure: true})
	for _, a := range s.actors {
		p := "before"
		if a == "kv3" {
			p = "nomigrate"
		}
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte(p), core.SendOptions{})
		require.NoError(t, err)
	}
	s.busyWith(t, "kv1", "2000")
	rec, err := s.mgr.Upgrade(ctxFor(t, 60*time.Second), "kv", bin("kv2-marked"))
	require.Error(t, err)
	assert.Equal(t, "rolled back", rec.Outcome, "%v", err)
	waitFor(t, 20*time.Second, "kv1's long batch", func() bool { return s.drained("kv1") })
	for _, a := range s.actors {
		assert.Equal(t, "1.0.0", s.state(t, a).Module, "%s is on the old version", a)
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("after"), core.SendOptions{})
		require.NoError(t, err, "%s serves", a)
	}
}
