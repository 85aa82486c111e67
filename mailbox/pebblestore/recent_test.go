package pebblestore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// recentStore opens a store with one claimed actor "a" and the recent
// cache bounded to budget bytes (0: the default).
func recentStore(t *testing.T, dir string, budget int64) (*pebblestore.Store, uint64) {
	t.Helper()
	s, err := pebblestore.Open(dir, mailbox.Options{Durability: mailbox.DurabilitySync})
	require.NoError(t, err)
	if budget > 0 {
		pebblestore.SetRecentBudget(s, budget)
	}
	ctx := context.Background()
	if _, err := s.Actor(ctx, "a"); err != nil {
		_, err = s.Register(ctx, "a", "b")
		require.NoError(t, err)
	}
	epoch, err := s.Claim(ctx, "a")
	require.NoError(t, err)
	return s, epoch
}

func sendN(t *testing.T, s *pebblestore.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		msg := mailbox.Message{ID: fmt.Sprintf("id-%d", i), Sender: "s", CallChain: []string{"x", "y"}, Payload: []byte(fmt.Sprintf("payload %d", i))}
		_, err := s.Enqueue(context.Background(), "a", msg)
		require.NoError(t, err)
	}
}

// TestReadFromMemoryMatchesDisk: what Read returns from the recent cache is
// exactly what it returns from disk after a reopen, attempts included.
func TestReadFromMemoryMatchesDisk(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, _ := recentStore(t, dir, 0)
	sendN(t, s, 0, 20)
	_, err := s.RecordFailure(ctx, "a", 3, "boom")
	require.NoError(t, err)
	require.Positive(t, pebblestore.RecentBytes(s), "the messages just sent are cached")
	fromMemory, err := s.Read(ctx, "a", 0, 100)
	require.NoError(t, err)
	require.Len(t, fromMemory, 20)
	require.Equal(t, uint32(1), fromMemory[2].Attempts)
	require.NoError(t, s.Close())

	s, _ = recentStore(t, dir, 0)
	defer s.Close()
	require.Zero(t, pebblestore.RecentBytes(s), "nothing is cached after a reopen")
	fromDisk, err := s.Read(ctx, "a", 0, 100)
	require.NoError(t, err)
	require.Equal(t, fromDisk, fromMemory)
}

// TestReadPastAFullCache: with room for three records, a backlog of ten
// is still read whole and in order, before and after acks, and the cache
// gives its room back as messages are acked.
func TestReadPastAFullCache(t *testing.T) {
	ctx := context.Background()
	s, epoch := recentStore(t, t.TempDir(), 3*(64+48))
	defer s.Close()
	sendN(t, s, 0, 10)
	all, err := s.Read(ctx, "a", 0, 100)
	require.NoError(t, err)
	require.Len(t, all, 10)
	for i, m := range all {
		require.Equal(t, uint64(i+1), m.Seq)
		require.Equal(t, fmt.Sprintf("payload %d", i), string(m.Payload))
	}
	some, err := s.Read(ctx, "a", 4, 3)
	require.NoError(t, err)
	require.Equal(t, []uint64{5, 6, 7}, seqsOf(some))

	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Through: 10}))
	require.Zero(t, pebblestore.RecentBytes(s), "acked messages leave the cache")
	sendN(t, s, 10, 5)
	rest, err := s.Read(ctx, "a", 0, 100)
	require.NoError(t, err)
	require.Equal(t, []uint64{11, 12, 13, 14, 15}, seqsOf(rest))
	require.Equal(t, "payload 14", string(rest[4].Payload))
}

// TestCachedReadsAreCopies: a reader that changes what Read gave it does
// not change what the next Read returns.
func TestCachedReadsAreCopies(t *testing.T) {
	ctx := context.Background()
	s, _ := recentStore(t, t.TempDir(), 0)
	defer s.Close()
	sendN(t, s, 0, 1)
	first, err := s.Read(ctx, "a", 0, 1)
	require.NoError(t, err)
	first[0].Payload[0] = 'X'
	again, err := s.Read(ctx, "a", 0, 1)
	require.NoError(t, err)
	require.Equal(t, "payload 0", string(again[0].Payload))
}

func seqsOf(ms []mailbox.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}
