package core_test

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// A handler that grows its state past limits.max_state_size fails that
// message with an error naming the limit, commits nothing of it, and does
// not kill the shared module: its neighbours keep being served. (Before,
// a 5 MiB state committed and every later batch of the actor broke the
// stream, killing the shared process each time.)
func TestStateOverTheLimitFailsThatMessageAlone(t *testing.T) {
	cfg := recorderConfig(t, t.TempDir(), "a", "b")
	cfg.MaxStateSize = 1 << 20
	cfg.MaxAttempts = 2
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	pid, err := c.Call(ctx, "a", []byte("pid"), core.SendOptions{})
	require.NoError(t, err)

	_, err = c.Call(ctx, "a", []byte("grow:"+strconv.Itoa(5<<20)), core.SendOptions{ID: "huge"})
	require.ErrorIs(t, err, core.ErrDeadLettered)
	assert.ErrorContains(t, err, "limits.max_state_size")
	assert.Empty(t, applied(t, c, "a"), "nothing of the oversize result is committed")

	after, err := c.Call(ctx, "b", []byte("pid"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, string(pid), string(after), "the shared module was never killed")
	reply, err := c.Call(ctx, "a", []byte("small"), core.SendOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ok:small", string(reply))
	assert.Equal(t, []string{"small"}, applied(t, c, "a"))
}

// A reply over the transport's old 4 MiB default but within graft's limits
// travels: gRPC's limits are derived from graft's, not left at gRPC's own.
func TestLimitsAndTransportAgree(t *testing.T) {
	dir := t.TempDir()
	cfg := recorderConfig(t, dir, "a")
	cfg.MaxMessageSize = 6 << 20
	cfg.OpenStore = func(opts mailbox.Options) (mailbox.Store, error) {
		opts.Durability, opts.MaxMessageSize = mailbox.DurabilitySync, 6<<20
		return pebblestore.Open(dir, opts)
	}
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	reply, err := c.Call(ctx, "a", []byte("big:"+strconv.Itoa(5<<20)), core.SendOptions{})
	require.NoError(t, err)
	assert.Len(t, reply, 5<<20)
	st, err := c.Call(ctx, "a", []byte("grow:"+strconv.Itoa(3<<20)), core.SendOptions{})
	require.NoError(t, err, "a 3 MiB state is within the default 4 MiB limit")
	assert.Equal(t, "grown", string(st))
}

// batchSizes records the size of every committed batch.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) BatchCommitted(_, _, _ string, n int, _ time.Duration) {
	b.mu.Lock()
	b.sizes = append(b.sizes, n)
	b.mu.Unlock()
}
func (b *batchSizes) MessageFailed(string, string) {}
func (b *batchSizes) DeadLettered(string, string)  {}
func (b *batchSizes) ModuleStarted(string, bool)   {}
func (b *batchSizes) Passivated(string)            {}
func (b *batchSizes) Woken(string)                 {}

// Batches are cut by bytes as well as by count: eight queued 900 KB
// messages go in batches of at most four (the 4 MiB default), never as
// one 7.2 MB batch.
func TestBatchesAreCutByBytes(t *testing.T) {
	obs := &batchSizes{}
	cfg := recorderConfig(t, t.TempDir(), "a")
	cfg.Observer = obs
	cfg.MaxStateSize = 16 << 20 // the recorder keeps every payload in its state
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	require.NoError(t, c.StopActor(ctx, "a"))
	for i := range 8 {
		_, err := c.Send(ctx, "a", []byte(strconv.Itoa(i)+strings.Repeat("p", 900_000)), core.SendOptions{})
		require.NoError(t, err)
	}
	obs.mu.Lock()
	obs.sizes = nil
	obs.mu.Unlock()
	require.NoError(t, c.StartActor(ctx, "a"))
	total := func() int {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		n := 0
		for _, k := range obs.sizes {
			n += k
		}
		return n
	}
	waitFor(t, 30*time.Second, "the eight messages to be committed", func() bool { return total() == 8 })
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, n := range obs.sizes {
		assert.LessOrEqual(t, n, 4, "a batch of %d messages of 900 KB is over 4 MiB", n)
	}
	assert.GreaterOrEqual(t, len(obs.sizes), 2)
}
