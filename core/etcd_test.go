package core_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
)

// A message whose effects no single etcd transaction holds (it sends
// more messages than the members' --max-txn-ops allows) fails alone, and
// is dead-lettered with the store's words naming the setting; the
// messages around it, whose batch the store refused with it, are handled
// once each; the actor never crash-loops on it.
func TestCommitOverTheStoreLimitFailsThatMessageAlone(t *testing.T) {
	m := etcdtest.Start(t)
	cfg := recorderConfig(t, t.TempDir(), "a", "b")
	cfg.OpenStore = func(opts mailbox.Options) (mailbox.Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{m.Endpoint}, Prefix: "/graft/too-large", MaxTxnOps: 128}, opts)
	}
	cfg.BatchSize = 16 // 16 messages fit in 128 operations; the fan-out does not
	c := startCore(t, cfg)
	ctx := ctxFor(t, 60*time.Second)
	want := []string{}
	for i := range 10 {
		p := "before-" + string(rune('a'+i))
		want = append(want, p)
		_, err := c.Send(ctx, "a", []byte(p), core.SendOptions{})
		require.NoError(t, err)
	}
	_, err := c.Send(ctx, "a", []byte("fan:200:b"), core.SendOptions{})
	require.NoError(t, err)
	for i := range 5 {
		p := "after-" + string(rune('a'+i))
		want = append(want, p)
		_, err := c.Send(ctx, "a", []byte(p), core.SendOptions{})
		require.NoError(t, err)
	}
	waitFor(t, 30*time.Second, "a's mailbox drained", func() bool { return drained(c, "a") })
	assert.Equal(t, want, applied(t, c, "a"), "every other message applied once, in order")
	dead, err := c.Store().DeadLetters(ctx, "a")
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, "fan:200:b", string(dead[0].Message.Payload))
	assert.Contains(t, dead[0].Message.LastError, "store.max_txn_ops")
	assert.Empty(t, applied(t, c, "b"), "nothing of the refused message reached b")
	rows, err := c.Status(ctx)
	require.NoError(t, err)
	for _, r := range rows {
		if r.Name == "a" {
			assert.Zero(t, r.Restarts, "a never crashed on it")
			assert.False(t, strings.Contains(r.LastExit, "commit"), r.LastExit)
		}
	}
}
