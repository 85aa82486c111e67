package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/internal/testbin"
)

// The rendezvous hash moves only what it must: a member's departure
// moves exactly its actors, an arrival moves actors only to the newcomer,
// and the actors are spread about evenly.
func TestRendezvousMovesOnlyWhatItMust(t *testing.T) {
	members := []string{"m0", "m1", "m2", "m3"}
	actors := make([]string, 2000)
	for i := range actors {
		actors[i] = fmt.Sprintf("account/%d", i)
	}
	before := map[string]string{}
	count := map[string]int{}
	for _, a := range actors {
		before[a] = desired(members, a)
		count[before[a]]++
	}
	for _, m := range members {
		assert.InDelta(t, len(actors)/len(members), count[m], float64(len(actors))/10, "member %s's share", m)
	}
	for _, a := range actors {
		after := desired([]string{"m0", "m1", "m3"}, a)
		if before[a] != "m2" {
			assert.Equal(t, before[a], after, "%s stays where it was when m2 leaves", a)
		} else {
			assert.NotEqual(t, "m2", after)
		}
		joined := desired([]string{"m0", "m1", "m2", "m3", "m4"}, a)
		if joined != before[a] {
			assert.Equal(t, "m4", joined, "%s moves only to the newcomer", a)
		}
	}
	assert.Equal(t, desired([]string{"b", "a"}, "x"), desired([]string{"a", "b"}, "x"), "the order of the members does not matter")
}

// fakeCore is the part of a core the cluster drives, counting calls: the
// real core is driven in cmd/graft's cluster tests.
type fakeCore struct{ rebalanced atomic.Int64 }

func (f *fakeCore) Rebalance(context.Context) ([]string, error) { f.rebalanced.Add(1); return nil, nil }
func (f *fakeCore) Released(string) bool                        { return true }

// A member whose lease is gone (revoked here; expired after a SIGSTOP in
// real life) owns nothing at once, lets its core release everything,
// joins again under a new lease and takes its share back; a member that
// stops revokes its lease, and the other takes everything over.
func TestLostLeaseStepsDownAndRejoins(t *testing.T) {
	m := etcdtest.Start(t)
	newMember := func(name string) (*Cluster, *fakeCore, context.CancelFunc, chan struct{}) {
		cl, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: 5 * time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		c, err := New(Config{Client: cl, Prefix: "/graft/lease", Member: name, LeaseTTL: 2 * time.Second, Logger: testbin.Logger(t)})
		require.NoError(t, err)
		core := &fakeCore{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.Run(ctx, core, func(context.Context) ([]string, error) { return []string{"a", "b", "c", "d", "e", "f"}, nil })
		}()
		return c, core, cancel, done
	}
	owned := func(c *Cluster) int {
		n := 0
		for _, a := range []string{"a", "b", "c", "d", "e", "f"} {
			if c.Owns(a) {
				n++
			}
		}
		return n
	}
	x, xcore, stopX, xdone := newMember("x")
	y, _, stopY, ydone := newMember("y")
	defer func() { stopY(); <-ydone }()
	testbin.WaitFor(t, 30*time.Second, "both members own a share", func() bool {
		return owned(x) > 0 && owned(y) > 0 && owned(x)+owned(y) == 6
	})

	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cl.Close()
	x.mu.RLock()
	lease := x.lease
	x.mu.RUnlock()
	calls := xcore.rebalanced.Load()
	_, err = cl.Revoke(context.Background(), lease)
	require.NoError(t, err)
	testbin.WaitFor(t, 30*time.Second, "x steps down: its core is rebalanced without its lease", func() bool {
		x.mu.RLock()
		defer x.mu.RUnlock()
		return xcore.rebalanced.Load() > calls && x.lease != lease
	})
	testbin.WaitFor(t, 30*time.Second, "x back with a share under a new lease", func() bool {
		return owned(x) > 0 && owned(x)+owned(y) == 6
	})

	stopX()
	<-xdone
	testbin.WaitFor(t, 30*time.Second, "y owns everything once x has left", func() bool { return owned(y) == 6 })
	assert.Len(t, y.Members(), 1)
}
