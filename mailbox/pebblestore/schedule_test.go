package pebblestore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// Timers set from outside any actor (Schedule) are listed by target, are
// durable across a reopen, fire once like any timer (TimerID set, Sender
// empty), create a virtual target, are untouched by an actor's Remove and
// PendingTimers, and refuse bad input before writing anything.
func TestScheduleFromOutside(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	opts := mailbox.Options{Virtual: func(name string) (string, bool) {
		if len(name) > 2 && name[:2] == "v/" {
			return "v", true
		}
		return "", false
	}}
	s := openStore(t, dir, opts)
	_, err := s.Register(ctx, "a", "b")
	require.NoError(t, err)
	sched := s.(*pebblestore.Store)
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
	s = openStore(t, dir, opts)
	sched = s.(*pebblestore.Store)
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
	assert.Len(t, list, 1, "a target's Remove leaves the outside timers to it")
	next, ok := s.NextTimer()
	require.True(t, ok)
	assert.Equal(t, now.Add(2*time.Hour).UnixNano(), next.UnixNano())
}
