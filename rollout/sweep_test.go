package rollout

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/upgrade"
)

// pausingKV holds the sweeper's Get of one meta key until released.
type pausingKV struct {
	clientv3.KV
	key     string
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func (p *pausingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := p.KV.Get(ctx, key, opts...)
	if key == p.key {
		p.once.Do(func() {
			close(p.reached)
			<-p.release
		})
	}
	return resp, err
}

// Member A announces a version whose binary was stored over SweepAfter
// ago (a canary promoted after a long bake, a version tried again after a
// rollback) while member B's sweep, which read the announcements just
// before and then the binary's meta, is about to delete it: A's publish
// marks the meta stored again, so B's guarded delete fails and the
// followers find the binary.
func TestSweepRacingAnAnnouncementKeepsTheBinary(t *testing.T) {
	client, ctx := startEtcd(t)
	dir := t.TempDir()
	v1, v2 := ver(t, dir, "v1"), ver(t, dir, "v2")
	a, err := New(Config{Client: client, Prefix: "/graft/race", Member: "a", Upgrader: &fakeUp{}, Scratch: t.TempDir()})
	require.NoError(t, err)
	// v1 announced; v2 stored long ago (its canary started then).
	require.NoError(t, a.publishBinary(ctx, v1.SHA, v1.Path))
	_, ok, err := a.put(ctx, "b", announcement{SHA: v1.SHA, Version: "1", Kind: "upgrade", By: "a"}, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, a.publishBinary(ctx, v2.SHA, v2.Path))

	bc, err := clientv3.New(clientv3.Config{Endpoints: client.Endpoints(), DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer bc.Close()
	reached := make(chan struct{})
	p := &pausingKV{KV: bc.KV, key: a.metaKey(v2.SHA), reached: reached, release: make(chan struct{})}
	bc.KV = p // before any use: the client's own goroutines do not read it
	b, err := New(Config{Client: bc, Prefix: "/graft/race", Member: "b", Upgrader: &fakeUp{}, Scratch: t.TempDir(), SweepAfter: time.Nanosecond})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- b.sweep(ctx) }()
	<-reached // B read the announcements (v1 only) and v2's meta

	require.NoError(t, a.Announce(ctx, "b", upgrade.Op{Kind: upgrade.KindUpgrade, From: upgrade.Version{SHA: v1.SHA}, To: v2}))
	close(p.release)
	require.NoError(t, <-done)

	require.Equal(t, v2.SHA, ann(t, ctx, client, a.annKey("b")).SHA)
	_, err = a.fetchBinary(ctx, v2.SHA, t.TempDir())
	require.NoError(t, err, "the announced binary is still there")
}
