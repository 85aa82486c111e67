package mailboxtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// timerIDs lists the ids of timers, in order.
func timerIDs(ts []mailbox.Timer) []string {
	out := make([]string, len(ts))
	for i, tm := range ts {
		out[i] = tm.ID
	}
	return out
}

func pending(t *testing.T, s mailbox.Store, owner string) []mailbox.Timer {
	t.Helper()
	ts, err := s.PendingTimers(ctx(t), owner)
	require.NoError(t, err)
	return ts
}

func requireNext(t *testing.T, s mailbox.Store, want time.Time) {
	t.Helper()
	next, ok := s.NextTimer()
	require.True(t, ok, "a timer is pending")
	assert.Equal(t, want.UnixNano(), next.UnixNano(), "NextTimer is the earliest due time")
}

// Timers are set and cancelled in commits: listed in due order, a second
// set of a pending id changes nothing, a cancel of an unknown id is a
// no-op, a timer set and cancelled in one commit is not set, and pending
// timers survive a reopen.
func testTimersSetAndCancel(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a", "b")
	now := time.Now()
	r := send(t, s, "a", "", "x")
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq, Timers: []mailbox.TimerRequest{
		{ID: "t2", To: "b", Due: now.Add(2 * time.Hour), Payload: []byte("two")},
		{ID: "t1", To: "b", Due: now.Add(time.Hour), Payload: []byte("one")},
		{ID: "t3", To: "b", Due: now.Add(3 * time.Hour), Payload: []byte("three")},
	}}))
	ts := pending(t, s, "a")
	require.Equal(t, []string{"t1", "t2", "t3"}, timerIDs(ts), "due order")
	assert.Equal(t, "a", ts[0].Owner)
	assert.Equal(t, "b", ts[0].To)
	assert.Equal(t, "one", string(ts[0].Payload))
	assert.Equal(t, now.Add(time.Hour).UnixNano(), ts[0].Due.UnixNano())
	requireNext(t, s, now.Add(time.Hour))
	assert.Empty(t, pending(t, s, "b"), "timers belong to the actor that set them")

	r = send(t, s, "a", "", "y")
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: r.Seq,
		Timers:       []mailbox.TimerRequest{{ID: "t1", To: "b", Due: now.Add(5 * time.Hour), Payload: []byte("again")}},
		CancelTimers: []string{"t2", "never-set"}}))
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"],
		Timers:       []mailbox.TimerRequest{{ID: "t4", To: "b", Due: now, Payload: []byte("four")}},
		CancelTimers: []string{"t4"}}))
	check := func(s mailbox.Store) {
		t.Helper()
		ts := pending(t, s, "a")
		require.Equal(t, []string{"t1", "t3"}, timerIDs(ts))
		assert.Equal(t, "one", string(ts[0].Payload), "a second set of a pending id changes nothing")
		assert.Equal(t, now.Add(time.Hour).UnixNano(), ts[0].Due.UnixNano())
		requireNext(t, s, now.Add(time.Hour))
	}
	check(s)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	check(s)
}

// FireDue fires due timers in due order, each exactly once, as ordinary
// messages that carry the timer id and the owner as sender; max bounds a
// call; timers not yet due stay.
func testFireDue(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a", "b")
	now := time.Now()
	base := now.Add(-time.Minute)
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Timers: []mailbox.TimerRequest{
		{ID: "late", To: "b", Due: base.Add(30 * time.Second), Payload: []byte("3")},
		{ID: "early", To: "b", Due: base.Add(10 * time.Second), Payload: []byte("1")},
		{ID: "future", To: "b", Due: now.Add(time.Hour), Payload: []byte("later")},
		{ID: "mid", To: "b", Due: base.Add(20 * time.Second), Payload: []byte("2")},
	}}))
	fired, err := s.FireDue(ctx(t), now, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"early", "mid", "late"}, timerIDs(fired))
	again, err := s.FireDue(ctx(t), now, 10)
	require.NoError(t, err)
	assert.Empty(t, again, "a timer fires once")
	assert.Equal(t, []string{"future"}, timerIDs(pending(t, s, "a")))
	requireNext(t, s, now.Add(time.Hour))

	check := func(s mailbox.Store) {
		t.Helper()
		ms, err := s.Read(ctx(t), "b", 0, 3)
		require.NoError(t, err)
		require.Equal(t, []string{"1", "2", "3"}, payloads(ms), "fired in due order")
		for i, id := range []string{"early", "mid", "late"} {
			assert.Equal(t, id, ms[i].TimerID, "the message carries its timer id")
			assert.Equal(t, "a", ms[i].Sender, "the owner is the sender")
		}
	}
	check(s)

	// max bounds one call.
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Timers: []mailbox.TimerRequest{
		{ID: "x1", To: "b", Due: base, Payload: []byte("x1")},
		{ID: "x2", To: "b", Due: base, Payload: []byte("x2")},
		{ID: "x3", To: "b", Due: base, Payload: []byte("x3")},
	}}))
	for _, want := range []int{2, 1, 0} {
		fired, err := s.FireDue(ctx(t), now, 2)
		require.NoError(t, err)
		assert.Len(t, fired, want)
	}
	// Cancelling a fired timer is a no-op.
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], CancelTimers: []string{"early"}}))
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	check(s)
	assert.Equal(t, []string{"future"}, timerIDs(pending(t, s, "a")))
	fired, err = s.FireDue(ctx(t), now, 10)
	require.NoError(t, err)
	assert.Empty(t, fired, "fired timers stay fired after a reopen")
}

// A timer whose target is neither registered nor virtual is kept in its
// owner's dead letters, naming the target, without a hole in the owner's
// mailbox; a requeue sends it to the target once that exists.
func testTimerToUnknownActor(t *testing.T, open Opener) {
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{}, "a")
	defer s.Close()
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Timers: []mailbox.TimerRequest{
		{ID: "t", To: "ghost", Due: time.Now().Add(-time.Second), Payload: []byte("boo")},
	}}))
	fired, err := s.FireDue(ctx(t), time.Now(), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, timerIDs(fired))
	dls, err := s.DeadLetters(ctx(t), "a")
	require.NoError(t, err)
	require.Len(t, dls, 1)
	d := dls[0]
	assert.Equal(t, "ghost", d.To)
	assert.Equal(t, "t", d.Message.TimerID)
	assert.Equal(t, "a", d.Message.Sender)
	assert.Equal(t, "boo", string(d.Message.Payload))
	assert.Contains(t, d.Message.LastError, `"ghost"`, "the error names the target")
	stats, err := s.Stats("a")
	require.NoError(t, err)
	assert.EqualValues(t, 1, stats.DeadLetters)
	assert.Zero(t, stats.Depth, "no hole in the owner's mailbox")

	_, err = s.Requeue(ctx(t), "a", d.Message.Seq)
	require.ErrorIs(t, err, mailbox.ErrUnknownActor, "the target is still unknown")
	dls, err = s.DeadLetters(ctx(t), "a")
	require.NoError(t, err)
	require.Len(t, dls, 1, "a refused requeue changes nothing")
	_, err = s.Register(ctx(t), "ghost", "b")
	require.NoError(t, err)
	_, err = s.Requeue(ctx(t), "a", d.Message.Seq)
	require.NoError(t, err)
	ms, err := s.Read(ctx(t), "ghost", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"boo"}, payloads(ms))
	assert.Equal(t, "t", ms[0].TimerID)
	dls, err = s.DeadLetters(ctx(t), "a")
	require.NoError(t, err)
	assert.Empty(t, dls)
}

// A commit that fails sets and cancels no timer; bad timer requests are
// refused before anything is written.
func testFailedCommitSetsNoTimer(t *testing.T, open Opener) {
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{}, "a", "b")
	defer s.Close()
	due := time.Now().Add(time.Hour)
	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"],
		Timers: []mailbox.TimerRequest{{ID: "t1", To: "b", Due: due}}}))
	err := s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"],
		Timers:       []mailbox.TimerRequest{{ID: "t2", To: "b", Due: time.Now()}},
		CancelTimers: []string{"t1"},
		Outgoing:     []mailbox.Outgoing{{To: "ghost", Message: mailbox.Message{Payload: []byte("x")}}}})
	require.ErrorIs(t, err, mailbox.ErrUnknownActor)
	assert.Equal(t, []string{"t1"}, timerIDs(pending(t, s, "a")), "the failed commit set and cancelled nothing")
	requireNext(t, s, due)
	fired, err := s.FireDue(ctx(t), time.Now(), 10)
	require.NoError(t, err)
	assert.Empty(t, fired)

	err = s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Timers: []mailbox.TimerRequest{{To: "b"}}})
	assert.ErrorContains(t, err, "without an id")
	err = s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Timers: []mailbox.TimerRequest{{ID: "x"}}})
	assert.ErrorIs(t, err, mailbox.ErrEmptyActorName)
	_, err = s.PendingTimers(ctx(t), "nobody")
	assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
}
