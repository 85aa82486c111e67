package etcdstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/internal/testbin"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
	"github.com/graft-host/graft/mailbox/mailboxtest"
)

// The conformance suite's stores live under one prefix each (the test's
// folder name), on one real etcd member shared by the package's tests.
func TestConformance(t *testing.T) {
	m := etcdtest.Start(t)
	mailboxtest.Run(t, func(t *testing.T, dir string, opts mailbox.Options) mailbox.Store {
		return open(t, m.Endpoint, dir, opts)
	})
}

func open(t *testing.T, endpoint, dir string, opts mailbox.Options) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: []string{endpoint}, Prefix: "/graft" + dir, MaxTxnOps: etcdtest.MaxTxnOps}, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Two processes on one prefix (here two stores) see each other's writes:
// a message sent through one wakes the other's Notify, an actor spawned
// through one is announced once by the other's Created, and the other's
// cached counters follow.
func TestTwoStoresShareOnePrefix(t *testing.T) {
	m := etcdtest.Start(t)
	var mu sync.Mutex
	notified, created := map[string]uint64{}, map[string]int{}
	b := open(t, m.Endpoint, "/shared", mailbox.Options{
		Notify:  func(actor string, last uint64) { mu.Lock(); notified[actor] = last; mu.Unlock() },
		Created: func(name, _ string) { mu.Lock(); created[name]++; mu.Unlock() },
	})
	a := open(t, m.Endpoint, "/shared", mailbox.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := a.Register(ctx, "x", "beh")
	require.NoError(t, err)
	r, err := a.Enqueue(ctx, "x", mailbox.Message{Payload: []byte("hi")})
	require.NoError(t, err)
	_, _, err = a.Spawn(ctx, mailbox.SpawnRequest{Name: "kid", Behaviour: "beh", Init: []byte("init")})
	require.NoError(t, err)
	testbin.WaitFor(t, 10*time.Second, "the other store's Notify and Created", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return notified["x"] == r.Seq && created["kid"] == 1 && notified["kid"] == 1
	})
	st, err := b.Stats("x")
	require.NoError(t, err)
	assert.Equal(t, r.Seq, st.Last)
	mu.Lock()
	assert.Zero(t, created["x"], "a configured actor is not announced: each core registers it")
	mu.Unlock()
}

// A store shared by a cluster claims an actor only for the core that
// holds its ownership key under its lease: one whose view lags cannot
// fence the owner.
func TestClaimNeedsTheOwnershipKey(t *testing.T) {
	m := etcdtest.Start(t)
	s := open(t, m.Endpoint, "/claims", mailbox.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Register(ctx, "x", "b")
	require.NoError(t, err)
	lease, err := s.Client().Grant(ctx, 10)
	require.NoError(t, err)
	const key = "/claims/cluster/o/x"
	s.GuardClaims(func(name string) (string, int64, bool) { return "/claims/cluster/o/" + name, int64(lease.ID), true })

	_, err = s.Claim(ctx, "x")
	require.ErrorIs(t, err, mailbox.ErrNotOwner, "no ownership key")
	other, err := s.Client().Grant(ctx, 10)
	require.NoError(t, err)
	_, err = s.Client().Put(ctx, key, "someone-else", clientv3.WithLease(other.ID))
	require.NoError(t, err)
	_, err = s.Claim(ctx, "x")
	require.ErrorIs(t, err, mailbox.ErrNotOwner, "the key under another lease")

	_, err = s.Client().Put(ctx, key, "me", clientv3.WithLease(lease.ID))
	require.NoError(t, err)
	epoch, err := s.Claim(ctx, "x")
	require.NoError(t, err)
	assert.Positive(t, epoch)
}
