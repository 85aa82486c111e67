package core_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// PauseAhead tells, while the pause waits for the batch in flight, the
// state that batch commits: once paused, the actor holds exactly that
// state (what an upgrade migrating it ahead relies on). Pauses land at
// random points of a closed loop of calls, so some find a batch in its
// Handle, some in its commit, some between batches.
func TestPauseAheadToldTheStateItCommits(t *testing.T) {
	c := startCore(t, recorderConfig(t, t.TempDir(), "a"))
	ctx := ctxFor(t, 60*time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Call(ctx, "a", []byte(fmt.Sprint(n)), core.SendOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, 20*time.Second, "traffic", func() bool { return len(applied(t, c, "a")) > 20 })

	up := c.Upgrades()
	told := 0
	for range 40 {
		var mu sync.Mutex
		var hints []mailbox.State
		p, err := up.PauseAhead(ctx, "a", func(st mailbox.State) {
			mu.Lock()
			hints = append(hints, st)
			mu.Unlock()
		})
		require.NoError(t, err)
		mu.Lock() // a hint comes before PauseAhead returns, or not at all
		got := append([]mailbox.State(nil), hints...)
		mu.Unlock()
		require.LessOrEqual(t, len(got), 1, "one hint per pause at most")
		if len(got) == 1 {
			told++
			assert.Equal(t, p.State.Schema, got[0].Schema)
			assert.Equal(t, string(p.State.Data), string(got[0].Data), "the hinted state is the one the paused actor holds")
		}
		assert.False(t, p.Drained.Before(p.Since), "drained after the pause began")
		p.Resume(nil, nil)
		seen := len(applied(t, c, "a"))
		waitFor(t, 10*time.Second, "more traffic", func() bool { return len(applied(t, c, "a")) > seen })
	}
	assert.Positive(t, told, "at least one pause found a batch in flight (40 pauses of a closed loop)")
}
