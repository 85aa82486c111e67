package pebblestore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// fireUntilQuiet calls FireDue with max until a call fires nothing and
// fails with nothing (at most limit calls), and returns what fired, by
// id, and the errors the calls returned.
func fireUntilQuiet(t *testing.T, s mailbox.Store, max, limit int) (map[string]int, []error) {
	t.Helper()
	fired := map[string]int{}
	var errs []error
	for i := 0; i < limit; i++ {
		ts, err := s.FireDue(context.Background(), time.Now(), max)
		for _, tm := range ts {
			fired[tm.ID]++
		}
		if err != nil {
			errs = append(errs, err)
		} else if len(ts) == 0 {
			return fired, errs
		}
	}
	t.Fatalf("FireDue still fires or fails after %d calls: fired %v, errors %v", limit, fired, errs)
	return nil, nil
}

// requireCorruptTimerErrors checks that errs holds, once each, a
// CorruptError naming each of the timers.
func requireCorruptTimerErrors(t *testing.T, errs []error, ids ...string) {
	t.Helper()
	joined := errors.Join(errs...)
	require.Error(t, joined)
	var ce *mailbox.CorruptError
	require.ErrorAs(t, joined, &ce, "an unreadable timer is reported as a CorruptError: %v", joined)
	assert.ErrorIs(t, joined, mailbox.ErrCorrupt)
	for _, id := range ids {
		n := 0
		for _, err := range errs {
			n += bytes.Count([]byte(err.Error()), []byte(`timer "`+id+`"`))
		}
		assert.Equal(t, 1, n, "timer %s is named once in the errors: %v", id, joined)
	}
}

// TestCorruptTimerDoesNotBlockOthers: the earliest due timers, one of an
// actor's and one set from outside, have records that do not decode. Each
// is reported once, as a CorruptError naming it (and in the log), and
// left on disk for an operator; every other timer fires, once, even one
// FireDue at a time (the unreadable ones are not claimed first forever);
// later timers fire too. After a reopen (which a corrupt record does not
// prevent) each is reported once again, and the owner can still cancel
// its own.
func TestCorruptTimerDoesNotBlockOthers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	logs := &logBuffer{}
	opts := mailbox.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	s, err := pebblestore.Open(dir, opts)
	require.NoError(t, err)
	defer func() { s.Close() }()
	for _, name := range []string{"a", "b"} {
		_, err := s.Register(ctx, name, "b")
		require.NoError(t, err)
	}
	epoch, err := s.Claim(ctx, "a")
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, s.Schedule(ctx, mailbox.TimerRequest{ID: "bad-out", To: "b", Due: now.Add(-4 * time.Second), Payload: []byte("x")}))
	require.NoError(t, s.Schedule(ctx, mailbox.TimerRequest{ID: "good-out", To: "b", Due: now.Add(-time.Second), Payload: []byte("good-out")}))
	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Timers: []mailbox.TimerRequest{
		{ID: "bad", To: "b", Due: now.Add(-3 * time.Second), Payload: []byte("x")},
		{ID: "good1", To: "b", Due: now.Add(-2 * time.Second), Payload: []byte("good1")},
		{ID: "good2", To: "b", Due: now.Add(-time.Second), Payload: []byte("good2")},
	}}))
	require.NoError(t, pebblestore.CorruptTimer(s, "", "bad-out"))
	require.NoError(t, pebblestore.CorruptTimer(s, "a", "bad"))

	fired, errs := fireUntilQuiet(t, s, 1, 10)
	assert.Equal(t, map[string]int{"good-out": 1, "good1": 1, "good2": 1}, fired, "every readable timer fires once")
	requireCorruptTimerErrors(t, errs, "bad-out", "bad")
	for _, id := range []string{"bad-out", "bad"} {
		assert.Equal(t, 1, logs.count(`"level":"ERROR"`, `"timer":"`+id+`"`), "the log names timer %s once:\n%s", id, logs)
	}
	_, ok := s.NextTimer()
	assert.False(t, ok, "the unreadable timers are not due any more")
	ms, err := s.Read(ctx, "b", 0, 10)
	require.NoError(t, err)
	require.Len(t, ms, 3)

	keys, err := pebblestore.Keys(s)
	require.NoError(t, err)
	left := 0
	for _, k := range keys {
		if k[0] == 'T' {
			left++
		}
	}
	assert.Equal(t, 2, left, "the unreadable records stay on disk")

	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Timers: []mailbox.TimerRequest{
		{ID: "later", To: "b", Due: time.Now(), Payload: []byte("later")}}}))
	fired, errs = fireUntilQuiet(t, s, 10, 10)
	assert.Equal(t, map[string]int{"later": 1}, fired)
	assert.Empty(t, errs, "reported once, not at every call")

	require.NoError(t, s.Close())
	s, err = pebblestore.Open(dir, opts)
	require.NoError(t, err, "a corrupt timer record does not keep the store from opening")
	fired, errs = fireUntilQuiet(t, s, 10, 10)
	assert.Empty(t, fired)
	requireCorruptTimerErrors(t, errs, "bad-out", "bad")
	epoch, err = s.Claim(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, CancelTimers: []string{"bad"}}), "its owner can cancel it")
	keys, err = pebblestore.Keys(s)
	require.NoError(t, err)
	left = 0
	for _, k := range keys {
		if k[0] == 'T' {
			left++
		}
	}
	assert.Equal(t, 1, left, "the cancel deleted the owner's unreadable timer")
}
