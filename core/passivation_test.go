package core_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// passiveConfig is recorderConfig whose behaviour passivates actors idle
// for `after`.
func passiveConfig(t testing.TB, dir string, after time.Duration, actors ...string) core.Config {
	cfg := recorderConfig(t, dir, actors...)
	b := cfg.Behaviours["recorder"]
	b.PassivateAfter = after
	cfg.Behaviours["recorder"] = b
	return cfg
}

// passivations counts the core's passivations and wakes.
type passivations struct{ passivated, woken atomic.Int64 }

func (p *passivations) BatchCommitted(string, string, string, int, time.Duration) {}
func (p *passivations) MessageFailed(string, string)                              {}
func (p *passivations) DeadLettered(string, string)                               {}
func (p *passivations) ModuleStarted(string, bool)                                {}
func (p *passivations) Passivated(string)                                         { p.passivated.Add(1) }
func (p *passivations) Woken(string)                                              { p.woken.Add(1) }

func waitStatus(t *testing.T, c *core.Core, actor, want string) {
	t.Helper()
	waitFor(t, 20*time.Second, actor+" "+want, func() bool { return status(t, c, actor).Status == want })
}

// An idle actor leaves memory (status passive) and its next message wakes
// it with the state it committed; across a restart of the core, idle
// actors start passive, without being started at all, and wake the same
// way.
func TestIdleActorPassivatesAndWakesWithItsState(t *testing.T) {
	dir := t.TempDir()
	cfg := passiveConfig(t, dir, 200*time.Millisecond, "a", "b")
	c, err := core.New(cfg)
	require.NoError(t, err)
	ctx := ctxFor(t, time.Minute)
	require.NoError(t, c.Start(ctx))
	_, err = c.Call(ctx, "a", []byte("one"), core.SendOptions{})
	require.NoError(t, err)
	waitStatus(t, c, "a", core.StatusPassive)
	waitStatus(t, c, "b", core.StatusPassive)

	reply, err := c.Call(ctx, "a", []byte("two"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:two", string(reply))
	assert.Equal(t, []string{"one", "two"}, applied(t, c, "a"), "woken with its committed state")
	waitStatus(t, c, "a", core.StatusPassive)
	require.NoError(t, c.Shutdown(ctx))

	c = startCore(t, passiveConfig(t, dir, 200*time.Millisecond, "a", "b"))
	assert.Equal(t, core.StatusPassive, status(t, c, "a").Status, "an idle actor starts passive")
	assert.Equal(t, core.StatusPassive, status(t, c, "b").Status)
	_, err = c.Call(ctx, "a", []byte("three"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two", "three"}, applied(t, c, "a"))
	assert.Equal(t, 0, status(t, c, "a").Restarts, "passivation is not a restart")
}

// Messages queued before Start wake their actor at Start; an actor with
// no message stays passive.
func TestQueuedMessagesWakeTheirActorAtStart(t *testing.T) {
	dir := t.TempDir()
	c, err := core.New(passiveConfig(t, dir, time.Hour, "busy", "idle"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Shutdown(ctxFor(t, 10*time.Second)) })
	ctx := ctxFor(t, time.Minute)
	_, err = c.Send(ctx, "busy", []byte("early"), core.SendOptions{})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	waitFor(t, 20*time.Second, "the queued message handled", func() bool { return drained(c, "busy") })
	assert.Equal(t, []string{"early"}, applied(t, c, "busy"))
	assert.Equal(t, "running", status(t, c, "busy").Status)
	assert.Equal(t, core.StatusPassive, status(t, c, "idle").Status)
}

// Sends race passivation (an actor idle for 10 ms passivates, checked
// every 10 ms) from 8 producers over 6 actors: every message is applied
// exactly once, in each producer's order, and none waits on a passive
// actor.
func TestSendsRacingPassivationLoseNothing(t *testing.T) {
	actors := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
	cfg := passiveConfig(t, t.TempDir(), 10*time.Millisecond, actors...)
	events := &passivations{}
	cfg.Observer = events
	c := startCore(t, cfg)
	ctx := ctxFor(t, 2*time.Minute)
	const producers, each = 8, 30
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for i := range each {
				to := actors[rng.IntN(len(actors))]
				_, err := c.Send(ctx, to, fmt.Appendf(nil, "m%d-%d", p, i), core.SendOptions{})
				if !assert.NoError(t, err) {
					return
				}
				// Pace the traffic so that actors go idle and passivate
				// between messages (this is traffic shape, not a wait).
				time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	waitFor(t, time.Minute, "every mailbox drained", func() bool { return drained(c, actors...) })
	total := 0
	for _, a := range actors {
		last := map[int]int{} // producer -> its last message applied here
		for _, m := range applied(t, c, a) {
			var p, i int
			_, err := fmt.Sscanf(m, "m%d-%d", &p, &i)
			require.NoError(t, err, m)
			if prev, ok := last[p]; ok {
				require.Greater(t, i, prev, "%s applied by %s out of its producer's order, or twice", m, a)
			}
			last[p] = i
			total++
		}
	}
	assert.Equal(t, producers*each, total, "every message applied once")
	t.Logf("%d passivations, %d wakes", events.passivated.Load(), events.woken.Load())
	assert.Greater(t, events.woken.Load(), int64(len(actors)), "the traffic never woke a passivated actor: the test raced nothing")
	for _, a := range actors {
		waitStatus(t, c, a, core.StatusPassive)
	}
}

// A timer due to a passive actor wakes it, and a destroy, stop and start
// of a passive actor do what they do to a running one.
func TestTimersAndOperatorActionsOnAPassiveActor(t *testing.T) {
	c := startCore(t, passiveConfig(t, t.TempDir(), 50*time.Millisecond, "t", "s", "d"))
	ctx := ctxFor(t, time.Minute)
	for _, a := range []string{"t", "s", "d"} {
		waitStatus(t, c, a, core.StatusPassive)
	}
	_, err := c.SendAfter(ctx, "t", []byte("tick"), time.Now().Add(100*time.Millisecond))
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "the timer handled", func() bool { return slices.Equal(applied(t, c, "t"), []string{"tick"}) })

	require.NoError(t, c.StopActor(ctx, "s"))
	assert.Equal(t, "stopped", status(t, c, "s").Status)
	_, err = c.Send(ctx, "s", []byte("queued"), core.SendOptions{})
	require.NoError(t, err)
	require.NoError(t, c.StartActor(ctx, "s"))
	waitFor(t, 20*time.Second, "the queued message handled", func() bool { return drained(c, "s") })
	assert.Equal(t, []string{"queued"}, applied(t, c, "s"))

	require.NoError(t, c.DestroyActor(ctx, "d"))
	assert.False(t, listed(t, c, "d"))
	_, err = c.Send(ctx, "d", []byte("x"), core.SendOptions{})
	require.ErrorIs(t, err, mailbox.ErrUnknownActor)
}

// Many passive actors cost no supervisor children: a core with 2,000
// idle actors lists them all passive, and waking 20 of them runs exactly
// those 20.
func TestManyPassiveActorsWakeOneByOne(t *testing.T) {
	names := make([]string, 2000)
	for i := range names {
		names[i] = "n" + strconv.Itoa(i)
	}
	c := startCore(t, passiveConfig(t, t.TempDir(), time.Hour, names...))
	ctx := ctxFor(t, time.Minute)
	for i := 0; i < len(names); i += 100 {
		_, err := c.Call(ctx, names[i], []byte("hi"), core.SendOptions{})
		require.NoError(t, err)
	}
	list, err := c.Status(ctx)
	require.NoError(t, err)
	count := map[string]int{}
	for _, s := range list {
		count[s.Status]++
	}
	assert.Equal(t, map[string]int{"running": 20, core.StatusPassive: 1980}, count)
}

// An upgrade's Pause never loses to a passivation: paced so that pauses
// land right when the actor turns idle, every pause holds an actor that
// stays in memory, paused, until it is resumed.
func TestPauseRacingPassivation(t *testing.T) {
	c := startCore(t, passiveConfig(t, t.TempDir(), 20*time.Millisecond, "a"))
	ctx := ctxFor(t, 2*time.Minute)
	h := c.Upgrades()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 150 {
		_, err := c.Call(ctx, "a", []byte("x"), core.SendOptions{})
		require.NoError(t, err)
		// Traffic shape: idle for about the passivation delay.
		time.Sleep(20*time.Millisecond + time.Duration(rng.IntN(12000))*time.Microsecond)
		p, err := h.Pause(ctx, "a")
		require.NoError(t, err, "pause %d", i)
		time.Sleep(15 * time.Millisecond) // longer than a sweep
		require.Equal(t, "running", status(t, c, "a").Status, "pause %d: a paused actor was passivated", i)
		p.Resume(nil, nil)
	}
}

// An upgrade's Pause that meets a wake in progress waits for it and
// pauses the woken actor, rather than finding it neither passive nor
// running.
func TestPauseRacingWake(t *testing.T) {
	c := startCore(t, passiveConfig(t, t.TempDir(), 20*time.Millisecond, "a"))
	ctx := ctxFor(t, 2*time.Minute)
	h := c.Upgrades()
	for i := range 100 {
		waitStatus(t, c, "a", core.StatusPassive)
		sent := make(chan error, 1)
		go func() {
			_, err := c.Send(ctx, "a", []byte("x"), core.SendOptions{})
			sent <- err
		}()
		time.Sleep(time.Duration(i%10) * 100 * time.Microsecond) // spread the race
		p, err := h.Pause(ctx, "a")
		require.NoError(t, err, "pause %d", i)
		p.Resume(nil, nil)
		require.NoError(t, <-sent)
	}
	waitFor(t, 20*time.Second, "every message handled", func() bool { return drained(c, "a") })
	assert.Len(t, applied(t, c, "a"), 100)
}
