package mailboxtest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

func testFailuresAndDeadLetters(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, ep := setup(t, open, dir, mailbox.Options{}, "a")
	good := send(t, s, "a", "", "good")
	poison := send(t, s, "a", "p-1", "poison")
	n, err := s.RecordFailure(ctx(t), "a", poison.Seq, "boom 1")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	require.NoError(t, s.Close())
	s = open(t, dir, mailbox.Options{})
	ep["a"], err = s.Claim(ctx(t), "a") // a reopened store fences the epochs of the earlier open
	require.NoError(t, err)
	n, err = s.RecordFailure(ctx(t), "a", poison.Seq, "boom 2")
	require.NoError(t, err)
	assert.EqualValues(t, 2, n, "attempts survive a reopen")
	ms, err := s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	assert.EqualValues(t, 0, ms[0].Attempts)
	assert.EqualValues(t, 2, ms[1].Attempts)
	assert.Equal(t, "boom 2", ms[1].LastError)
	_, err = s.RecordFailure(ctx(t), "a", poison.Seq+5, "x")
	assert.ErrorIs(t, err, mailbox.ErrUnknownMessage)

	require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: poison.Seq,
		DeadLetters: []mailbox.DeadLetterRequest{{Seq: poison.Seq, Error: "boom 3"}}}))
	dls, err := s.DeadLetters(ctx(t), "a")
	require.NoError(t, err)
	require.Len(t, dls, 1)
	m := dls[0].Message
	assert.Equal(t, "poison", string(m.Payload))
	assert.Equal(t, "p-1", m.ID)
	assert.Equal(t, "test", m.Sender)
	assert.EqualValues(t, 2, m.Attempts)
	assert.Equal(t, "boom 3", m.LastError)
	rc, err := s.Lookup(ctx(t), "a", "p-1")
	require.NoError(t, err)
	assert.Equal(t, mailbox.OutcomeDeadLettered, rc.Outcome)
	assert.Equal(t, "boom 3", rc.Error)
	stats, err := s.Stats("a")
	require.NoError(t, err)
	assert.EqualValues(t, 1, stats.DeadLetters)
	_ = good

	r, err := s.Requeue(ctx(t), "a", poison.Seq)
	require.NoError(t, err)
	assert.Greater(t, r.Seq, poison.Seq)
	ms, err = s.Read(ctx(t), "a", 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"poison"}, payloads(ms))
	assert.EqualValues(t, 0, ms[0].Attempts, "a requeued message starts afresh")
	rc, err = s.Lookup(ctx(t), "a", "p-1")
	require.NoError(t, err)
	assert.Equal(t, r.Seq, rc.Seq)
	assert.Equal(t, mailbox.OutcomePending, rc.Outcome)
	dls, err = s.DeadLetters(ctx(t), "a")
	require.NoError(t, err)
	assert.Empty(t, dls)
	_, err = s.Requeue(ctx(t), "a", poison.Seq)
	assert.ErrorIs(t, err, mailbox.ErrUnknownMessage)
	require.NoError(t, s.Close())
}

// Many callers requeue one dead letter at once (an operator's retried
// request, two consoles): exactly one succeeds, the others find the dead
// letter gone (ErrUnknownMessage), its message is delivered once and the
// dead-letter count ends at zero. Both kinds: a handler's dead letter
// (back to its own mailbox) and a timer's (to its target). The race is
// run several times, as the callers may happen to run one after another.
func testConcurrentRequeue(t *testing.T, open Opener) {
	const callers, rounds = 16, 8
	s, ep := setup(t, open, t.TempDir(), mailbox.Options{}, "a")
	defer s.Close()
	for r := 0; r < rounds; r++ {
		// Large messages: a requeue's write takes long enough for the
		// callers to overlap.
		big := strings.Repeat(fmt.Sprintf("poison %d ", r), 6<<10)
		poison := send(t, s, "a", fmt.Sprintf("p-%d", r), big)
		ghost := fmt.Sprintf("ghost-%d", r)
		require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: poison.Seq,
			DeadLetters: []mailbox.DeadLetterRequest{{Seq: poison.Seq, Error: "boom"}},
			Timers:      []mailbox.TimerRequest{{ID: ghost, To: ghost, Due: time.Now().Add(-time.Second), Payload: []byte(big)}}}))
		fired, err := s.FireDue(ctx(t), time.Now(), 10)
		require.NoError(t, err)
		require.Len(t, fired, 1)
		_, err = s.Register(ctx(t), ghost, "b")
		require.NoError(t, err)
		dls, err := s.DeadLetters(ctx(t), "a")
		require.NoError(t, err)
		require.Len(t, dls, 2, "the handler's dead letter and the timer's")
		for i, d := range dls {
			requeueRace(t, s, "a", d, callers)
			stats, err := s.Stats("a")
			require.NoError(t, err)
			assert.EqualValues(t, len(dls)-1-i, stats.DeadLetters, "the dead-letter count")
		}
		left, err := s.DeadLetters(ctx(t), "a")
		require.NoError(t, err)
		assert.Empty(t, left)
		if t.Failed() {
			return // one round's report is enough
		}
		ms, err := s.Read(ctx(t), "a", 0, 10)
		require.NoError(t, err)
		if len(ms) > 0 { // ack the requeued message for the next round
			require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: "a", Epoch: ep["a"], Through: ms[len(ms)-1].Seq}))
		}
	}
}

// requeueRace has callers goroutines requeue owner's dead letter d at
// once, and checks that one succeeded and the message arrived once.
func requeueRace(t *testing.T, s mailbox.Store, owner string, d mailbox.DeadLetter, callers int) {
	t.Helper()
	target := owner
	if d.To != "" {
		target = d.To
	}
	errs := make([]error, callers)
	var start, wg sync.WaitGroup
	start.Add(1)
	for c := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			_, errs[c] = s.Requeue(ctx(t), owner, d.Message.Seq)
		}()
	}
	start.Done()
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		assert.ErrorIs(t, err, mailbox.ErrUnknownMessage, "a requeue that lost the race finds the dead letter gone")
	}
	assert.Equal(t, 1, ok, "dead letter %d of %s: exactly one requeue succeeds", d.Message.Seq, owner)
	ms, err := s.Read(ctx(t), target, 0, 10)
	require.NoError(t, err)
	if assert.Equal(t, 1, len(ms), "the message is delivered once to %s", target) { // not the payloads: they are large
		assert.True(t, bytes.Equal(d.Message.Payload, ms[0].Payload), "the message delivered to %s is the dead letter's", target)
	}
}
