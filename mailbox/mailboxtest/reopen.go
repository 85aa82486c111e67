package mailboxtest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
)

// testReopenRebuildsEveryActor: many actors, each left in its own shape
// (messages queued, some acked, ids, a failure, a dead letter, a state),
// read back the same after a reopen: counters, backlog, idempotency,
// the next sequence number.
func testReopenRebuildsEveryActor(t *testing.T, open Opener) {
	dir := t.TempDir()
	const n = 60
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("r%02d", i)
	}
	s, ep := setup(t, open, dir, mailbox.Options{}, names...)
	var backlog []string
	for i, a := range names {
		sent := i % 5 // 0..4 messages
		var last mailbox.Receipt
		for k := range sent {
			last = send(t, s, a, fmt.Sprintf("id-%d", k), fmt.Sprintf("m%d", k))
		}
		if sent > 0 && i%3 == 0 { // ack them all, with a state
			st := mailbox.State{Schema: uint32(i), Module: "v1", Data: []byte(a)}
			require.NoError(t, s.Commit(ctx(t), mailbox.Commit{Actor: a, Epoch: ep[a], Through: last.Seq, State: &st}))
		} else if sent > 0 {
			backlog = append(backlog, a)
		}
		if sent > 1 && i%3 == 1 { // a failure on the first
			_, err := s.RecordFailure(ctx(t), a, last.Seq-uint64(sent)+1, "boom")
			require.NoError(t, err)
		}
	}
	before := map[string]mailbox.Stats{}
	for _, a := range names {
		st, err := s.Stats(a)
		require.NoError(t, err)
		before[a] = st
	}
	checkBacklog := func(s mailbox.Store) {
		got, err := s.Backlog(ctx(t))
		require.NoError(t, err)
		slices.Sort(got)
		assert.Equal(t, backlog, got)
	}
	checkBacklog(s)
	require.NoError(t, s.Close())

	s = open(t, dir, mailbox.Options{})
	defer s.Close()
	checkBacklog(s)
	var ranged []string
	require.NoError(t, s.Range(ctx(t), func(a mailbox.Actor) bool {
		ranged = append(ranged, a.Name)
		return true
	}))
	slices.Sort(ranged)
	assert.Equal(t, names, ranged, "Range yields every actor once")
	stopped := 0
	require.NoError(t, s.Range(ctx(t), func(mailbox.Actor) bool { stopped++; return stopped < 3 }))
	assert.Equal(t, 3, stopped, "Range stops when fn returns false")
	for i, a := range names {
		st, err := s.Stats(a)
		require.NoError(t, err)
		assert.Equal(t, before[a], st, "counters of %s", a)
		if i%5 > 0 {
			r := send(t, s, a, "id-0", "m0")
			assert.True(t, r.Duplicate || r.Outcome != mailbox.OutcomePending, "%s: a retried id is known after the reopen: %+v", a, r)
		}
		r := send(t, s, a, "", "after")
		assert.Equal(t, before[a].Last+1, r.Seq, "%s continues its sequence", a)
		if i%3 == 0 && i%5 > 0 {
			act, err := s.Actor(ctx(t), a)
			require.NoError(t, err)
			assert.EqualValues(t, i, act.Schema, "%s state version", a)
		}
	}
}
