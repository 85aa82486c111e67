package pebblestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// TestFireDueOnAFullDisk: FireDue on a real, full tmpfs fails at once with
// a disk-full error and fires nothing: the timers it claimed stay pending
// (NextTimer still says they are due), the virtual target it would have
// created is not created, and once space is freed every timer fires
// exactly once, its message delivered once, also after a reopen.
func TestFireDueOnAFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	store := filepath.Join(mnt, "store")
	opts := mailbox.Options{Virtual: func(name string) (string, bool) {
		if len(name) > 2 && name[:2] == "v/" {
			return "v", true
		}
		return "", false
	}}
	s, err := pebblestore.Open(store, opts)
	require.NoError(t, err)
	defer func() { s.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, name := range []string{"a", "b"} {
		_, err := s.Register(ctx, name, "b")
		require.NoError(t, err)
	}
	epoch, err := s.Claim(ctx, "a")
	require.NoError(t, err)
	due := time.Now().Add(-time.Second)
	want := map[string]string{} // timer id -> target
	var reqs []mailbox.TimerRequest
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("t%d", i)
		reqs = append(reqs, mailbox.TimerRequest{ID: id, To: "b", Due: due, Payload: []byte(id)})
		want[id] = "b"
	}
	reqs = append(reqs, mailbox.TimerRequest{ID: "to-virtual", To: "v/new", Due: due, Payload: []byte("to-virtual")})
	want["to-virtual"] = "v/new"
	require.NoError(t, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Timers: reqs}))
	require.NoError(t, s.Schedule(ctx, mailbox.TimerRequest{ID: "outside", To: "b", Due: due, Payload: []byte("outside")}))
	want["outside"] = "b"

	ballast := fillDisk(t, mnt)
	// The engine's background work (a flush, a log it no longer needs)
	// may free space after the fill: take that too, as testDiskFull does.
	topUp(t, mnt, 0)
	err = returns(t, "FireDue on a full disk", func(ctx context.Context) error {
		fired, err := s.FireDue(ctx, time.Now(), 100)
		if err == nil {
			return fmt.Errorf("FireDue fired %d timers on a full disk", len(fired))
		}
		return err
	})
	requireDiskFull(t, err, store)
	next, ok := s.NextTimer()
	require.True(t, ok, "the claimed timers are pending again")
	assert.False(t, next.After(time.Now()), "and due")
	_, err = s.Actor(ctx, "v/new")
	require.ErrorIs(t, err, mailbox.ErrUnknownActor, "the failed write created no actor")

	require.NoError(t, os.Remove(ballast))
	removeTopUps(t, mnt)
	fired := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts, err := s.FireDue(ctx, time.Now(), 100)
		if err == nil {
			for _, tm := range ts {
				fired[tm.ID]++
			}
			break
		}
		requireDiskFull(t, err, store)
		require.True(t, time.Now().Before(deadline), "FireDue still refused 30 s after space was freed: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	again, err := s.FireDue(ctx, time.Now(), 100)
	require.NoError(t, err)
	assert.Empty(t, again, "a timer fires once")
	for id := range want {
		assert.Equal(t, 1, fired[id], "timer %s fired once", id)
	}
	requireDelivered := func(s *pebblestore.Store) {
		t.Helper()
		got := map[string]int{}
		for _, name := range []string{"b", "v/new"} {
			ms, err := s.Read(ctx, name, 0, 100)
			require.NoError(t, err)
			for _, m := range ms {
				assert.Equal(t, want[m.TimerID], name, "timer %s delivered to its target", m.TimerID)
				got[m.TimerID]++
			}
		}
		for id := range want {
			assert.Equal(t, 1, got[id], "timer %s's message delivered once", id)
		}
	}
	requireDelivered(s)

	require.NoError(t, s.Close())
	s, err = pebblestore.Open(store, opts)
	require.NoError(t, err)
	again, err = s.FireDue(ctx, time.Now(), 100)
	require.NoError(t, err)
	assert.Empty(t, again, "nothing fires again after a reopen")
	requireDelivered(s)
}
