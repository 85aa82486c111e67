package mailboxtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// Scheduler is the optional part of a store that sets timers from outside
// any actor (core.SendAfter, `graft send --after`). Both of graft's
// backends have it, and the suite holds them to it.
type Scheduler interface {
	Schedule(ctx context.Context, t mailbox.TimerRequest) error
	Scheduled(ctx context.Context, to string) ([]mailbox.Timer, error)
	Unschedule(ctx context.Context, to string) (int, error)
}

func asScheduler(t *testing.T, s mailbox.Store) Scheduler {
	t.Helper()
	sch, ok := s.(Scheduler)
	require.True(t, ok, "%T cannot set timers from outside an actor (Schedule, Scheduled, Unschedule)", s)
	return sch
}

// Timers set from outside any actor (Schedule) are listed by target, are
// durable across a reopen, fire once like any timer (TimerID set, Sender
// empty), create a virtual target, are not an actor's PendingTimers, are
// deleted by their target's Remove (its target index rebuilt by the
// reopen), and refuse bad input before writing anything.
func testScheduleFromOutside(t *testing.T, open Opener) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	opts := scheduleOptions()
	s := open(t, dir, opts)
	_, err := s.Register(ctx, "a", "b")
	require.NoError(t, err)
	sched := asScheduler(t, s)
	now := time.Now()
	require.NoError(t, sched.Schedule(ctx, mailbox.TimerRequest{ID: "s2", To: "a", Due: now.Add(2 * time.Hour), Payload: []byte("two")}))
	require.NoError(t, sched.Schedule(ctx, mailbox.TimerRequest{ID: "s1", To: "a", Due: now.Add(-time.Second), Payload: []byte("one")}))
	require.NoError(t, sched.Schedule(ctx, mailbox.TimerRequest{ID: "s1", To: "a", Due: now, Payload: []byte("again")}), "a pending id is a no-op")
	require.NoError(t, sched.Schedule(ctx, mailbox.TimerRequest{ID: "s3", To: "v/x", Due: now.Add(-time.Millisecond), Payload: []byte("three")}))

	for _, bad := range []mailbox.TimerRequest{{To: "a"}, {ID: "x"}, {ID: "y", To: "a", Payload: make([]byte, mailbox.DefaultMaxMessageSize+1)}} {
		assert.Error(t, sched.Schedule(ctx, bad), "%+v is refused", bad)
	}
	mine, err := s.PendingTimers(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, mine, "outside timers belong to no actor")

	require.NoError(t, s.Close())
	s = open(t, dir, opts)
	sched = asScheduler(t, s)
	list, err := sched.Scheduled(ctx, "a")
	require.NoError(t, err)
	require.Len(t, list, 2, "durable across a reopen, listed by target")
	assert.Equal(t, []string{"s1", "s2"}, []string{list[0].ID, list[1].ID}, "in due order")
	assert.Equal(t, "one", string(list[0].Payload), "the first set of an id wins")
	assert.Empty(t, list[0].Owner)

	fired, err := s.FireDue(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, fired, 2, "s1 and s3 are due")
	fired, err = s.FireDue(ctx, time.Now(), 10)
	require.NoError(t, err)
	assert.Empty(t, fired, "a timer fires once")
	msgs, err := s.Read(ctx, "a", 0, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "one", string(msgs[0].Payload))
	assert.Equal(t, "s1", msgs[0].TimerID)
	assert.Empty(t, msgs[0].Sender)
	v, err := s.Actor(ctx, "v/x")
	require.NoError(t, err, "the virtual target was created by the firing")
	assert.Equal(t, mailbox.OriginVirtual, v.Origin)

	require.NoError(t, s.Remove(ctx, "a"))
	list, err = sched.Scheduled(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, list, "a target's Remove deletes the sends scheduled to it")
	_, ok := s.NextTimer()
	assert.False(t, ok, "s2 is gone from memory too")
	require.NoError(t, s.Close())
	s = open(t, dir, opts)
	list, err = asScheduler(t, s).Scheduled(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, list, "and from disk")
	_, ok = s.NextTimer()
	assert.False(t, ok)
}

// testRemoveDeletesSendsScheduledToIt: a virtual actor is destroyed while
// a send scheduled to it from outside is due. Remove deletes that send
// (and the later one) in its own write, so a FireDue right after it (the
// timer loop runs between the core's Remove and Unschedule) or a crash
// right after it does not create the actor again; sends scheduled to
// other names stay and fire.
func testRemoveDeletesSendsScheduledToIt(t *testing.T, open Opener) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	opts := scheduleOptions()
	st := open(t, dir, opts)
	s := struct {
		mailbox.Store
		Scheduler
	}{st, asScheduler(t, st)}
	_, err := s.Enqueue(ctx, "v/x", mailbox.Message{Payload: []byte("first")})
	require.NoError(t, err)
	now := time.Now()
	for _, r := range []mailbox.TimerRequest{
		{ID: "due", To: "v/x", Due: now.Add(-time.Second), Payload: []byte("due")},
		{ID: "later", To: "v/x", Due: now.Add(time.Hour), Payload: []byte("later")},
		{ID: "other", To: "v/y", Due: now.Add(-time.Second), Payload: []byte("other")},
	} {
		require.NoError(t, s.Schedule(ctx, r))
	}
	require.NoError(t, s.Remove(ctx, "v/x"))
	fired, err := s.FireDue(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, fired, 1)
	assert.Equal(t, "other", fired[0].ID, "only the send to another name fires")
	_, err = s.Actor(ctx, "v/x")
	require.ErrorIs(t, err, mailbox.ErrUnknownActor, "the destroyed actor was created again")
	n, err := s.Unschedule(ctx, "v/x")
	require.NoError(t, err)
	assert.Zero(t, n, "Remove left nothing for the core's Unschedule")

	// What Remove wrote is durable: a crash right after it (a reopen here,
	// without the core's Unschedule) brings nothing back.
	require.NoError(t, s.Close())
	st = open(t, dir, opts)
	s = struct {
		mailbox.Store
		Scheduler
	}{st, asScheduler(t, st)}
	fired, err = s.FireDue(ctx, time.Now().Add(2*time.Hour), 10)
	require.NoError(t, err)
	assert.Empty(t, fired)
	_, err = s.Actor(ctx, "v/x")
	require.ErrorIs(t, err, mailbox.ErrUnknownActor)
	list, err := s.Scheduled(ctx, "v/x")
	require.NoError(t, err)
	assert.Empty(t, list)
	ms, err := s.Read(ctx, "v/y", 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"other"}, payloads(ms))

	// Unschedule finds the sends scheduled before a reopen (the target
	// index is rebuilt from disk) and leaves the others.
	require.NoError(t, s.Schedule(ctx, mailbox.TimerRequest{ID: "z1", To: "v/z", Due: now.Add(time.Hour)}))
	require.NoError(t, s.Schedule(ctx, mailbox.TimerRequest{ID: "w1", To: "v/w", Due: now.Add(time.Hour)}))
	require.NoError(t, s.Close())
	st = open(t, dir, opts)
	s = struct {
		mailbox.Store
		Scheduler
	}{st, asScheduler(t, st)}
	n, err = s.Unschedule(ctx, "v/z")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	list, err = s.Scheduled(ctx, "v/w")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "w1", list[0].ID)
}

// scheduleOptions make every name "v/KEY" a virtual actor of behaviour v.
func scheduleOptions() mailbox.Options {
	return mailbox.Options{Virtual: func(name string) (string, bool) {
		if len(name) > 2 && name[:2] == "v/" {
			return "v", true
		}
		return "", false
	}}
}
