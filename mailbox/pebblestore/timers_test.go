package pebblestore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// TestFireRacesCommits: FireDue runs in a loop while an actor's commits set
// timers that are due at once and cancel the previous one. Every timer
// fires at most once; one whose cancel was committed fired, if at all,
// before that commit returned (its message is already in the mailbox
// then); every other one fires exactly once; none is left.
func TestFireRacesCommits(t *testing.T) {
	ctx := context.Background()
	s, err := pebblestore.Open(t.TempDir(), mailbox.Options{Durability: mailbox.DurabilityRelaxed})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Register(ctx, "a", "b")
	require.NoError(t, err)
	_, err = s.Register(ctx, "b", "b")
	require.NoError(t, err)
	epoch, err := s.Claim(ctx, "a")
	require.NoError(t, err)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := s.FireDue(ctx, time.Now(), 4)
			assert.NoError(t, err)
		}
	}()
	const n = 300
	lastAtCancel := map[string]uint64{} // b's last seq when the cancel returned
	for i := 0; i < n; i++ {
		c := mailbox.Commit{Actor: "a", Epoch: epoch, Timers: []mailbox.TimerRequest{
			{ID: fmt.Sprintf("t-%d", i), To: "b", Due: time.Now(), Payload: []byte(fmt.Sprintf("t-%d", i))}}}
		if i%2 == 1 {
			c.CancelTimers = []string{fmt.Sprintf("t-%d", i-1)}
		}
		require.NoError(t, s.Commit(ctx, c))
		if i%2 == 1 {
			st, err := s.Stats("b")
			require.NoError(t, err)
			lastAtCancel[c.CancelTimers[0]] = st.Last
		}
	}
	close(stop)
	wg.Wait()
	for {
		fired, err := s.FireDue(ctx, time.Now(), 64)
		require.NoError(t, err)
		if len(fired) == 0 {
			break
		}
	}
	ms, err := s.Read(ctx, "b", 0, 10*n)
	require.NoError(t, err)
	seen := map[string]uint64{}
	for _, m := range ms {
		_, dup := seen[m.TimerID]
		require.False(t, dup, "timer %s fired twice", m.TimerID)
		seen[m.TimerID] = m.Seq
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("t-%d", i)
		seq, ok := seen[id]
		if last, wasCancelled := lastAtCancel[id]; wasCancelled {
			if ok {
				assert.LessOrEqual(t, seq, last, "timer %s fired after its cancel was committed", id)
			}
			continue
		}
		assert.True(t, ok, "timer %s never fired", id)
	}
	ts, err := s.PendingTimers(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, ts)
	_, pendingLeft := s.NextTimer()
	assert.False(t, pendingLeft)
}
