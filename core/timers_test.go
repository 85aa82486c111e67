package core_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// setTimer has actor set a timer to `to` in delay and returns it as the
// core lists it.
func setTimer(t *testing.T, c *core.Core, actor, to string, delay time.Duration, body string) mailbox.Timer {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	id, err := c.Call(ctx, actor, []byte(fmt.Sprintf("after:%d:%s:%s", delay.Milliseconds(), to, body)), core.SendOptions{})
	require.NoError(t, err)
	pending, err := c.Timers(ctx, actor)
	require.NoError(t, err)
	i := slices.IndexFunc(pending, func(tm mailbox.Timer) bool { return tm.ID == string(id) })
	require.GreaterOrEqual(t, i, 0, "timer %s is pending", id)
	return pending[i]
}

// A timer fires exactly once, no earlier than due, as a message with its
// timer id; a cancelled one never fires; a handler re-arming its timer
// does periodic work; a timer to a virtual actor not yet created creates
// it. A later timer fired after a cancelled earlier one shows the
// cancelled one will not fire.
func TestTimerFiresOnceNotEarly(t *testing.T) {
	c := startCore(t, effectsConfig(t, t.TempDir(), "a", "b"))
	ctx := ctxFor(t, 60*time.Second)
	tm := setTimer(t, c, "a", "b", 300*time.Millisecond, "ring")
	assert.Equal(t, "a", tm.Owner)
	waitFor(t, 20*time.Second, "the timer fires", func() bool { return len(stateOf(t, c, "b").timers["ring"]) > 0 })
	at := stateOf(t, c, "b").timers["ring"][0]
	assert.False(t, at.Before(tm.Due), "handled at %s, due %s", at, tm.Due)

	never := setTimer(t, c, "a", "b", 2*time.Second, "never") // cancelled long before it is due
	_, err := c.Call(ctx, "a", []byte("cancel:"+never.ID), core.SendOptions{})
	require.NoError(t, err)
	later := setTimer(t, c, "a", "b", 2200*time.Millisecond, "later")
	require.True(t, later.Due.After(never.Due))
	pending, err := c.Timers(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, []string{later.ID}, timerIDs(pending), "the cancelled timer is gone")
	waitFor(t, 20*time.Second, "the later timer fires", func() bool { return len(stateOf(t, c, "b").timers["later"]) > 0 })
	_, err = c.Call(ctx, "b", []byte("ping"), core.SendOptions{})
	require.NoError(t, err)
	rec := stateOf(t, c, "b")
	assert.Len(t, rec.timers["ring"], 1, "fired once")
	assert.Len(t, rec.timers["later"], 1, "fired once")
	assert.Empty(t, rec.timers["never"], "cancelled before it was due")

	_, err = c.Call(ctx, "a", []byte("tick:3:20"), core.SendOptions{})
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "three ticks", func() bool { return len(stateOf(t, c, "a").timers["tick:0:20"]) > 0 })
	var ticks []string
	for _, e := range stateOf(t, c, "a").applied {
		if strings.HasPrefix(e, "timer:tick:") {
			ticks = append(ticks, e[len("timer:"):strings.LastIndex(e, "@")])
		}
	}
	assert.Equal(t, []string{"tick:2:20", "tick:1:20", "tick:0:20"}, ticks, "re-armed once per tick, in order")

	setTimer(t, c, "a", "acct/later", 10*time.Millisecond, "wake")
	waitFor(t, 20*time.Second, "the virtual target is created and woken", func() bool {
		return len(stateOf(t, c, "acct/later").timers["wake"]) == 1
	})
	assert.Equal(t, "init", stateOf(t, c, "acct/later").applied[0])
}

// A send scheduled from outside (graft send --after) is listed under its
// target and delivered once at its due time, with its timer id.
func TestSendAfter(t *testing.T) {
	c := startCore(t, effectsConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 30*time.Second)
	due := time.Now().Add(300 * time.Millisecond)
	id, err := c.SendAfter(ctx, "a", []byte("later"), due)
	require.NoError(t, err)
	pending, err := c.Timers(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []string{id}, timerIDs(pending))
	assert.Empty(t, pending[0].Owner, "set from outside")
	_, err = c.SendAfter(ctx, "acct/sched", []byte("hi"), time.Now())
	require.NoError(t, err, "a virtual target need not exist yet")
	_, err = c.SendAfter(ctx, "ghost", []byte("x"), due)
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
	waitFor(t, 20*time.Second, "the scheduled send arrives", func() bool { return len(stateOf(t, c, "a").timers["later"]) > 0 })
	assert.False(t, stateOf(t, c, "a").timers["later"][0].Before(due))
	waitFor(t, 20*time.Second, "the virtual target is created", func() bool { return len(stateOf(t, c, "acct/sched").timers["hi"]) == 1 })
	pending, err = c.Timers(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, pending)
}

// A send scheduled with the caller's id is set once however often it is
// retried while pending (the same timer id back, the first due time
// kept) and delivered once; the same id to another actor is another
// send, and an oversize id is refused.
func TestSendAfterIDIsRetrySafe(t *testing.T) {
	c := startCore(t, effectsConfig(t, t.TempDir(), "a", "b"))
	ctx := ctxFor(t, 30*time.Second)
	due := time.Now().Add(500 * time.Millisecond)
	id, err := c.SendAfterID(ctx, "a", "r1", []byte("once"), due)
	require.NoError(t, err)
	again, err := c.SendAfterID(ctx, "a", "r1", []byte("once"), due.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, id, again)
	other, err := c.SendAfterID(ctx, "b", "r1", []byte("once"), due)
	require.NoError(t, err)
	assert.NotEqual(t, id, other, "the id names a send to one actor")
	pending, err := c.Timers(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []string{id}, timerIDs(pending))
	assert.True(t, pending[0].Due.Equal(due.Round(0)), "the first due time stands: %s", pending[0].Due)
	_, err = c.SendAfterID(ctx, "a", strings.Repeat("x", core.MaxMessageIDSize+1), nil, due)
	assert.ErrorIs(t, err, core.ErrInvalidMessageID)

	for _, a := range []string{"a", "b"} {
		waitFor(t, 20*time.Second, a+" gets the scheduled send", func() bool { return len(stateOf(t, c, a).timers["once"]) > 0 })
		_, err := c.Call(ctx, a, []byte("last"), core.SendOptions{})
		require.NoError(t, err)
		assert.Len(t, stateOf(t, c, a).timers["once"], 1, "%s: delivered once", a)
	}
}

// Timers pending when the core shuts down fire after it restarts: those
// that came due while it was down at start, in due order, the others at
// their due time, each once.
func TestTimersFireAfterRestart(t *testing.T) {
	dir := t.TempDir()
	c, err := core.New(effectsConfig(t, dir, "a", "b"))
	require.NoError(t, err)
	ctx := ctxFor(t, 60*time.Second)
	require.NoError(t, c.Start(ctx))
	var timers []mailbox.Timer
	for _, d := range []time.Duration{2300, 2200, 2100} { // set latest first: due order is not set order
		timers = append(timers, setTimer(t, c, "a", "b", d*time.Millisecond, fmt.Sprint(int(d))))
	}
	late := setTimer(t, c, "a", "b", 4*time.Second, "late")
	pending, err := c.Timers(ctx, "a")
	require.NoError(t, err)
	require.Len(t, pending, 4, "none fired before the shutdown")
	require.NoError(t, c.Shutdown(ctx))
	time.Sleep(time.Until(timers[0].Due)) // the three come due while the core is down

	c = startCore(t, effectsConfig(t, dir, "a", "b"))
	waitFor(t, 20*time.Second, "every timer fires", func() bool { return len(stateOf(t, c, "b").timers["late"]) > 0 })
	_, err = c.Call(ctx, "b", []byte("ping"), core.SendOptions{})
	require.NoError(t, err)
	rec := stateOf(t, c, "b")
	var order []string
	for _, e := range rec.applied {
		if body, ok := strings.CutPrefix(e, "timer:"); ok {
			order = append(order, body[:strings.LastIndex(body, "@")])
		}
	}
	assert.Equal(t, []string{"2100", "2200", "2300", "late"}, order, "in due order, each once")
	assert.False(t, rec.timers["late"][0].Before(late.Due), "the late one fired at its due time")
	pending, err = c.Timers(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, pending)
	require.NoError(t, c.Shutdown(ctx))
}

func timerIDs(ts []mailbox.Timer) []string {
	out := make([]string, len(ts))
	for i, tm := range ts {
		out[i] = tm.ID
	}
	return out
}
