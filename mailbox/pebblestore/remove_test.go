package pebblestore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// actorKeys returns, by key prefix, the keys of s's engine that belong to
// the actor with this name and id: the registry record, every id-prefixed
// key and the timers it owns ('T' due owner id).
func actorKeys(t *testing.T, s *pebblestore.Store, name string, id uint64) map[byte]int {
	t.Helper()
	keys, err := pebblestore.Keys(s)
	require.NoError(t, err)
	idb := binary.BigEndian.AppendUint64(nil, id)
	found := map[byte]int{}
	for _, k := range keys {
		switch {
		case k[0] == 'A' && string(k[1:]) == name,
			k[0] == 'T' && len(k) >= 17 && bytes.Equal(k[9:17], idb),
			bytes.ContainsRune([]byte("SCQFIiRDt"), rune(k[0])) && len(k) >= 9 && bytes.Equal(k[1:9], idb):
			found[k[0]]++
		}
	}
	return found
}

// TestRemoveLeavesNoKey: after Remove, no key in the engine holds the
// actor's name or id, whatever it had stored: registry record, state,
// cursor, queue, failures, id index and order, outcomes, dead letters (a
// timer's too), timers and their owner index. The same listing before
// Remove finds every one of those kinds, so the check can see them.
func TestRemoveLeavesNoKey(t *testing.T) {
	ctx := context.Background()
	s, err := pebblestore.Open(t.TempDir(), mailbox.Options{})
	require.NoError(t, err)
	defer s.Close()
	epochs := map[string]uint64{}
	for _, name := range []string{"a", "b"} {
		_, err := s.Register(ctx, name, "b")
		require.NoError(t, err)
		epochs[name], err = s.Claim(ctx, name)
		require.NoError(t, err)
	}
	var seqs []uint64
	for _, id := range []string{"m1", "m2", "m3"} {
		r, err := s.Enqueue(ctx, "a", mailbox.Message{ID: id, Payload: []byte(id)})
		require.NoError(t, err)
		seqs = append(seqs, r.Seq)
	}
	_, err = s.RecordFailure(ctx, "a", seqs[2], "boom")
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epochs["a"], Through: seqs[1],
		State:       &mailbox.State{Data: []byte("s")},
		Replies:     []mailbox.Reply{{MessageID: "m2", Payload: []byte("r")}},
		DeadLetters: []mailbox.DeadLetterRequest{{Seq: seqs[0], Error: "dead"}},
		Timers: []mailbox.TimerRequest{
			{ID: "later", To: "b", Due: time.Now().Add(time.Hour)},
			{ID: "lost", To: "ghost", Due: time.Now().Add(-time.Second)},
		}}))
	fired, err := s.FireDue(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, fired, 1, "the timer to an unknown actor becomes a dead letter of its owner")
	// b's keys, and a timer of b's for a, must survive a's removal.
	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "b", Epoch: epochs["b"],
		Timers: []mailbox.TimerRequest{{ID: "for-a", To: "a", Due: time.Now().Add(time.Hour)}}}))

	id, err := pebblestore.ActorID(s, "a")
	require.NoError(t, err)
	before := actorKeys(t, s, "a", id)
	for _, p := range "ASCQFIiRDTt" {
		assert.Positive(t, before[byte(p)], "before Remove, the listing finds %c keys of the actor", p)
	}
	assert.Equal(t, 2, before['D'], "a dead letter and a timer's")

	require.NoError(t, s.Remove(ctx, "a"))
	assert.Empty(t, actorKeys(t, s, "a", id), "keys of the removed actor are left")
	idB, err := pebblestore.ActorID(s, "b")
	require.NoError(t, err)
	assert.Equal(t, 1, actorKeys(t, s, "b", idB)['T'], "b's timer for a stays")
}

// TestRemoveDuringWrites: Remove while producers enqueue to the actor and
// it commits; the writes in progress end before its keys are deleted, so
// none of them leaves a key behind, and every later write is refused.
func TestRemoveDuringWrites(t *testing.T) {
	ctx := context.Background()
	s, err := pebblestore.Open(t.TempDir(), mailbox.Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Register(ctx, "a", "b")
	require.NoError(t, err)
	epoch, err := s.Claim(ctx, "a")
	require.NoError(t, err)
	id, err := pebblestore.ActorID(s, "a")
	require.NoError(t, err)
	sent := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for n := 0; ; n++ {
				_, err := s.Enqueue(ctx, "a", mailbox.Message{ID: fmt.Sprintf("p%d-%d", p, n), Payload: []byte("x")})
				if err != nil {
					assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
					return
				}
				select {
				case sent <- struct{}{}:
				default:
				}
			}
		}(p)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ms, err := s.Read(ctx, "a", 0, 16)
			if err != nil {
				assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
				return
			}
			if len(ms) == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			err = s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Through: ms[len(ms)-1].Seq,
				State: &mailbox.State{Data: []byte("s")}, Replies: []mailbox.Reply{{MessageID: ms[0].ID, Payload: []byte("r")}},
				Timers: []mailbox.TimerRequest{{ID: ms[0].ID, To: "a", Due: time.Now().Add(time.Hour)}}})
			if err != nil {
				assert.ErrorIs(t, err, mailbox.ErrUnknownActor)
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		<-sent // the producers are under way
	}
	require.NoError(t, s.Remove(ctx, "a"))
	wg.Wait()
	assert.Empty(t, actorKeys(t, s, "a", id), "a write in progress left a key of the removed actor")
	_, ok := s.NextTimer()
	assert.False(t, ok, "the removed actor's timers are gone from memory too")
}
