package upgrade_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/upgrade"
)

// load sends "put-N" and "get-N" to random actors of s from 4 goroutines
// until stop, and returns, once stopped, every payload the core
// acknowledged.
func load(t *testing.T, s *system, stop <-chan struct{}) func() []string {
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := g; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				kind := "put"
				if i%2 == 1 {
					kind = "get"
				}
				p := fmt.Sprintf("%s-%d", kind, i)
				a := s.actors[rng.IntN(len(s.actors))]
				if _, err := s.core.Send(ctxFor(t, 10*time.Second), a, []byte(p), core.SendOptions{ID: p}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, a+" "+p)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // a steady load, not a flood: the bake compares rates
			}
		}()
	}
	return func() []string {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return acked
	}
}

// requireAppliedOnce checks that every acknowledged send was applied
// exactly once, by the actor it was sent to.
func requireAppliedOnce(t *testing.T, s *system, acked []string) {
	t.Helper()
	waitFor(t, 60*time.Second, "mailboxes drained", func() bool { return s.drained(s.actors...) })
	applied := map[string]int{}
	for _, a := range s.actors {
		for _, p := range s.state(t, a).Applied {
			applied[a+" "+p]++
		}
	}
	for _, k := range acked {
		require.Equal(t, 1, applied[k], "acknowledged %s applied %d times", k, applied[k])
	}
}

// TestCanaryThatFailsRollsBackByItself: under load, a canary of a v2
// that fails one in 20 messages of one kind is rolled back by the bake's
// failure gate long before the window ends; every actor is on v1 again,
// the history says why with the numbers, and no acknowledged message is
// lost (those the canary dead-lettered were requeued and ran on v1).
func TestCanaryThatFailsRollsBackByItself(t *testing.T) {
	s := bootKV1(t, 20, upgrade.Options{GroupSize: 4})
	stop := make(chan struct{})
	acked := load(t, s, stop)
	plan, err := upgrade.ParseCanary("25%", time.Minute)
	require.NoError(t, err)
	t0 := time.Now()
	rec, err := s.mgr.UpgradeWith(ctxFor(t, 2*time.Minute), "kv", bin("kv2-flaky"), upgrade.UpgradeOptions{Canary: plan})
	took := time.Since(t0)
	close(stop)
	var rolled *upgrade.CanaryRolledBackError
	require.ErrorAs(t, err, &rolled, "the canary must fail its gate")
	assert.Less(t, took, time.Minute, "rolled back within the bake window")
	assert.Equal(t, string(upgrade.OutcomeRolledBack), rec.Outcome)
	assert.Contains(t, rec.Canary, "25% for 1m0s: rolled back: failure rate")
	for _, a := range s.actors {
		assert.EqualValues(t, 1, s.state(t, a).Schema, "actor %s back on v1", a)
	}
	requireAppliedOnce(t, s, acked())
	for _, a := range s.actors {
		dls, err := s.core.Store().DeadLetters(context.Background(), a)
		require.NoError(t, err)
		assert.Empty(t, dls, "actor %s: what the canary dead-lettered was requeued", a)
	}
	cur, _ := s.mgr.Current("kv")
	assert.Equal(t, "1.0.0", cur.Code)
}

// TestHealthyCanaryIsPromoted: during the bake both versions serve side
// by side (the canary group on v2, the rest on v1, as status shows); at
// the end of the window every gate passes and the rest move.
func TestHealthyCanaryIsPromoted(t *testing.T) {
	s := bootKV1(t, 10, upgrade.Options{GroupSize: 4})
	stop := make(chan struct{})
	acked := load(t, s, stop)
	plan, err := upgrade.ParseCanary("30%", 3*time.Second)
	require.NoError(t, err)
	done := make(chan error, 1)
	var rec upgradeResult
	go func() {
		r, err := s.mgr.UpgradeWith(ctxFor(t, 2*time.Minute), "kv", bin("kv2"), upgrade.UpgradeOptions{Canary: plan})
		rec.set(r.Outcome, r.Canary)
		done <- err
	}()
	var op upgrade.Op
	waitFor(t, 30*time.Second, "the bake", func() bool {
		var ok bool
		op, ok = s.mgr.Running("kv")
		return ok && op.Canary != nil && op.Canary.Phase == upgrade.PhaseBaking
	})
	require.Len(t, op.Canary.Group, 3)
	for _, a := range s.actors {
		want := uint32(1)
		if slices.Contains(op.Canary.Group, a) {
			want = 2
		}
		assert.Equal(t, want, s.state(t, a).Schema, "actor %s during the bake", a)
	}
	require.NoError(t, <-done)
	close(stop)
	outcome, canary := rec.get()
	assert.Equal(t, string(upgrade.OutcomeCompleted), outcome)
	assert.Contains(t, canary, "30% for 3s: promoted: every gate passed")
	requireAppliedOnce(t, s, acked())
	for _, a := range s.actors {
		assert.EqualValues(t, 2, s.state(t, a).Schema, "actor %s on v2", a)
	}
}

// TestOperatorEndsABake: --abort rolls a healthy canary back, --promote
// finishes one at once, and either is refused with no bake running.
func TestOperatorEndsABake(t *testing.T) {
	s := bootKV1(t, 6, upgrade.Options{})
	touch(t, s)
	require.ErrorIs(t, s.mgr.Decide("kv", upgrade.DecisionPromote), upgrade.ErrNotBaking)
	for _, d := range []upgrade.Decision{upgrade.DecisionAbort, upgrade.DecisionPromote} {
		plan, err := upgrade.ParseCanary("kv0,kv1", time.Hour)
		require.NoError(t, err)
		done := s.startBaking(t, "kv2", plan)
		op := s.mgr.RunningOps()["kv"]
		assert.Equal(t, [2]int{2, 2}, [2]int{op.Moved, op.ToMove}, "the canary's move: 2 of 2 actors moved")
		assert.Equal(t, [2]int{1, 1}, [2]int{op.GroupsMoved, op.Groups}, "in 1 group of 1")
		require.NoError(t, s.mgr.Decide("kv", d))
		err = <-done
		h := s.history(t)
		last := h[len(h)-1]
		if d == upgrade.DecisionAbort {
			var rolled *upgrade.CanaryRolledBackError
			require.ErrorAs(t, err, &rolled)
			assert.Contains(t, last.Canary, "aborted by an operator")
			assert.EqualValues(t, 1, s.state(t, "kv0").Schema)
			continue
		}
		require.NoError(t, err)
		assert.Contains(t, last.Canary, "promoted by an operator")
		assert.EqualValues(t, 2, s.state(t, "kv5").Schema)
	}
}

// TestCanaryPlansThatCannotWork are refused before anything moves.
func TestCanaryPlansThatCannotWork(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0%", "above 0 and below 100"},
		{"100%", "above 0 and below 100"},
		{"ten%", "above 0 and below 100"},
		{"", "empty canary"},
	} {
		_, err := upgrade.ParseCanary(tc.in, time.Second)
		require.ErrorContains(t, err, tc.want, "canary %q", tc.in)
	}
	_, err := upgrade.ParseCanary("10%", 0)
	require.ErrorContains(t, err, "bake time above zero")

	s := bootKV1(t, 2, upgrade.Options{})
	touch(t, s)
	before := len(s.history(t))
	for _, tc := range []struct{ in, want string }{
		{"kv0,nosuch", `canary actor "nosuch" is not an actor of behaviour "kv"`},
		{"1", `canary actor "1" is not an actor of behaviour "kv" (a share is written with %, such as 1%)`},
		{"kv0,kv1", "names every actor"},
	} {
		plan, err := upgrade.ParseCanary(tc.in, time.Second)
		require.NoError(t, err)
		_, err = s.mgr.UpgradeWith(ctxFor(t, time.Minute), "kv", bin("kv2"), upgrade.UpgradeOptions{Canary: plan})
		require.ErrorContains(t, err, tc.want)
		assert.EqualValues(t, 1, s.state(t, "kv0").Schema, "nothing moved")
	}
	assert.Len(t, s.history(t), before, "a canary that cannot be picked is refused before anything starts: no failed op in the history")
}

// upgradeResult carries a record's outcome out of a goroutine.
type upgradeResult struct {
	mu              sync.Mutex
	outcome, canary string
}

func (u *upgradeResult) set(o, c string) { u.mu.Lock(); u.outcome, u.canary = o, c; u.mu.Unlock() }
func (u *upgradeResult) get() (string, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.outcome, u.canary
}

// bootKV1 boots n kv actors on v1 in a fresh folder.
func bootKV1(t *testing.T, n int, opts upgrade.Options) *system {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	return boot(t, dir, n, opts)
}

// touch calls every actor once, so each has a committed state on v1.
func touch(t *testing.T, s *system) {
	for _, a := range s.actors {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), a, []byte("hello"), core.SendOptions{})
		require.NoError(t, err)
	}
}

// failedAttempts is actor's count of failed attempts, from status.
func (s *system) failedAttempts(t *testing.T, actor string) uint64 {
	t.Helper()
	rows, err := s.core.Status(ctxFor(t, 5*time.Second))
	require.NoError(t, err)
	i := slices.IndexFunc(rows, func(r core.ActorStatus) bool { return r.Name == actor })
	require.GreaterOrEqual(t, i, 0)
	return rows[i].Failed
}

// A message the canary fails more than max_attempts times is not
// dead-lettered while the canary bakes: rolled back, the old version
// handles it in its place, before the messages sent after it; promoted,
// the hold ends and it is dead-lettered as any other.
func TestCanaryKeepsWhatItFailsInOrder(t *testing.T) {
	s := bootKV1(t, 4, upgrade.Options{})
	touch(t, s)
	for _, d := range []upgrade.Decision{upgrade.DecisionAbort, upgrade.DecisionPromote} {
		actor, bad := "kv0", "put-20" // the flaky v2 fails put-N for N a multiple of 20
		if d == upgrade.DecisionPromote {
			actor, bad = "kv1", "put-40"
		}
		plan, err := upgrade.ParseCanary(actor, time.Hour)
		require.NoError(t, err)
		plan.Gates.MinMessages = 1000 // no gate decides: the operator does
		done := s.startBaking(t, "kv2-flaky", plan)
		before := s.failedAttempts(t, actor)
		for _, p := range []string{bad, "put-1", "put-2"} {
			_, err := s.core.Send(ctxFor(t, 10*time.Second), actor, []byte(p), core.SendOptions{})
			require.NoError(t, err)
		}
		waitFor(t, 30*time.Second, "more failed attempts than max_attempts (5)", func() bool { return s.failedAttempts(t, actor) >= before+7 })
		dls, err := s.core.Store().DeadLetters(context.Background(), actor)
		require.NoError(t, err)
		require.Empty(t, dls, "held, not dead-lettered, during the bake")
		require.NoError(t, s.mgr.Decide("kv", d))
		err = <-done
		if d == upgrade.DecisionAbort {
			var rolled *upgrade.CanaryRolledBackError
			require.ErrorAs(t, err, &rolled)
			waitFor(t, 30*time.Second, "the mailbox drained on v1", func() bool { return s.drained(actor) })
			applied := s.state(t, actor).Applied
			assert.Equal(t, []string{"hello", bad, "put-1", "put-2"}, applied, "v1 handled the held message in its place")
			continue
		}
		require.NoError(t, err)
		waitFor(t, 30*time.Second, "the held message dead-lettered once the bake ended", func() bool {
			dls, err := s.core.Store().DeadLetters(context.Background(), actor)
			require.NoError(t, err)
			return len(dls) == 1 && string(dls[0].Message.Payload) == bad
		})
		waitFor(t, 30*time.Second, "the messages behind it", func() bool { return s.drained(actor) })
		assert.Equal(t, []string{"hello", "put-1", "put-2"}, s.state(t, actor).Applied)
	}
}

// A rebuild the watcher picks up upgrades with the behaviour's configured
// canary (Options.Policies), as `graft upgrade` without --canary does.
func TestWatchedRebuildUsesThePolicy(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := boot(t, dir, 3, upgrade.Options{Debounce: 100 * time.Millisecond,
		Policies: map[string]upgrade.Canary{"kv": {Actors: []string{"kv1"}, Bake: time.Hour}}})
	touch(t, s)
	require.NoError(t, s.mgr.Watch(ctxFor(t, 2*time.Minute)))
	install(t, "kv2", s.source)
	waitFor(t, 30*time.Second, "the watched rebuild's canary baking", func() bool {
		op, ok := s.mgr.Running("kv")
		return ok && op.Canary != nil && op.Canary.Phase == upgrade.PhaseBaking
	})
	op, _ := s.mgr.Running("kv")
	assert.Equal(t, []string{"kv1"}, op.Canary.Group)
	assert.EqualValues(t, 2, s.state(t, "kv1").Schema, "the canary moved")
	assert.EqualValues(t, 1, s.state(t, "kv0").Schema, "the others wait for the verdict")
	require.NoError(t, s.mgr.Decide("kv", upgrade.DecisionPromote))
	waitFor(t, 30*time.Second, "the promoted upgrade recorded", func() bool {
		h := s.history(t)
		return len(h) > 0 && h[len(h)-1].Outcome == "completed"
	})
	h := s.history(t)
	assert.Contains(t, h[len(h)-1].Canary, "1 actor for 1h0m0s: promoted")
	for _, a := range s.actors {
		assert.EqualValues(t, 2, s.state(t, a).Schema, a)
	}
}

// A message the canary held, that the old version fails too once the
// canary is rolled back, gets max_attempts tries of its own there before
// it is dead-lettered, rather than one.
func TestHeldMessageGetsItsTriesBackOnTheOldVersion(t *testing.T) {
	s := bootKV1(t, 3, upgrade.Options{})
	touch(t, s)
	plan, err := upgrade.ParseCanary("kv0", time.Hour)
	require.NoError(t, err)
	plan.Gates.MinMessages = 1000 // no gate decides: the operator does
	done := s.startBaking(t, "kv2-badfail", plan)
	_, err = s.core.Send(ctxFor(t, 10*time.Second), "kv0", []byte("bad-1"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 30*time.Second, "the message held (over max_attempts, 5)", func() bool { return s.failedAttempts(t, "kv0") >= 6 })
	held := s.failedAttempts(t, "kv0") // and a held retry or two more before the rollback: backoff 50, 100 ms, ...
	require.NoError(t, s.mgr.Decide("kv", upgrade.DecisionAbort))
	var rolled *upgrade.CanaryRolledBackError
	require.ErrorAs(t, <-done, &rolled)
	waitFor(t, 30*time.Second, "the message dead-lettered on v1", func() bool {
		dls, err := s.core.Store().DeadLetters(context.Background(), "kv0")
		require.NoError(t, err)
		return len(dls) == 1
	})
	dls, err := s.core.Store().DeadLetters(context.Background(), "kv0")
	require.NoError(t, err)
	assert.Contains(t, dls[0].Message.LastError, "v1 fails every bad- message")
	assert.GreaterOrEqual(t, s.failedAttempts(t, "kv0")-held, uint64(5), "v1 had max_attempts tries of its own, not one")
}

// startBaking starts a canary upgrade of kv to binary with plan in the
// background and returns once it bakes; done gets the upgrade's error.
func (s *system) startBaking(t *testing.T, binary string, plan *upgrade.Canary) (done <-chan error) {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		_, err := s.mgr.UpgradeWith(ctxFor(t, 2*time.Minute), "kv", bin(binary), upgrade.UpgradeOptions{Canary: plan})
		ch <- err
	}()
	waitFor(t, 30*time.Second, "the bake", func() bool {
		op, ok := s.mgr.Running("kv")
		return ok && op.Canary != nil && op.Canary.Phase == upgrade.PhaseBaking
	})
	return ch
}

// TestInconclusiveBakeEndsAsConfigured: a bake that ends on too little
// traffic to judge rolls back with inconclusive: rollback; with hold it
// bakes on, says so, and the gates decide once the canary has had the
// attempts they need.
func TestInconclusiveBakeEndsAsConfigured(t *testing.T) {
	s := bootKV1(t, 4, upgrade.Options{})
	touch(t, s)

	plan, err := upgrade.ParseCanary("kv0,kv1", 300*time.Millisecond)
	require.NoError(t, err)
	plan.Gates.Inconclusive = upgrade.InconclusiveRollback
	_, err = s.mgr.UpgradeWith(ctxFor(t, time.Minute), "kv", bin("kv2"), upgrade.UpgradeOptions{Canary: plan})
	var rolled *upgrade.CanaryRolledBackError
	require.ErrorAs(t, err, &rolled)
	h := s.history(t)
	assert.Contains(t, h[len(h)-1].Canary, "rolled back as inconclusive")
	assert.Contains(t, h[len(h)-1].Canary, "too little traffic to judge")
	assert.EqualValues(t, 1, s.state(t, "kv0").Schema, "the canary is back on v1")

	plan, err = upgrade.ParseCanary("kv0,kv1", 300*time.Millisecond)
	require.NoError(t, err)
	plan.Gates.Inconclusive, plan.Gates.MinMessages = upgrade.InconclusiveHold, 5
	done := s.startBaking(t, "kv2", plan)
	waitFor(t, 30*time.Second, "the bake held for traffic", func() bool {
		op, ok := s.mgr.Running("kv")
		return ok && op.Canary != nil && strings.Contains(op.Canary.Verdict, "held for traffic")
	})
	select {
	case err := <-done:
		t.Fatalf("a held bake ended with no traffic: %v", err)
	default:
	}
	op, _ := s.mgr.Running("kv")
	assert.Equal(t, upgrade.PhaseBaking, op.Canary.Phase, "held: still baking")
	for i := range 6 {
		_, err := s.core.Call(ctxFor(t, 10*time.Second), "kv0", []byte(fmt.Sprint("put-", i)), core.SendOptions{})
		require.NoError(t, err)
	}
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the held bake did not end once the canary had its attempts")
	}
	h = s.history(t)
	assert.Contains(t, h[len(h)-1].Canary, "promoted: after a hold for traffic: every gate passed")
	assert.EqualValues(t, 2, s.state(t, "kv3").Schema, "promoted: every actor on v2")
}
