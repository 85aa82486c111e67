package core_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/etcdtest"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/etcdstore"
)

// The cluster backend's figures in docs/BENCHMARKS.md come from (the raw
// etcd baseline runs in the same command, on its own fresh cluster of the
// same shape):
//
//	go test -p 1 -run '^$' -bench 'Etcd' -benchtime 5000x ./core/

// BenchmarkEtcdEndToEnd: 16 producers send b.N 128-byte messages to 64
// actors of one behaviour (one shared plugin process) on the etcd store,
// a 3-member cluster; the clock stops when every message has been handled
// and its effect committed.
func BenchmarkEtcdEndToEnd(b *testing.B) {
	endpoints := etcdtest.StartEmbeddedCluster(b, 3)
	cfg := counterConfig(b, b.TempDir(), mailbox.DurabilitySync, e2eActors)
	cfg.OpenStore = func(opts mailbox.Options) (mailbox.Store, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return etcdstore.Open(ctx, etcdstore.Config{Endpoints: endpoints, Prefix: "/graft/bench", MaxTxnOps: etcdtest.MaxTxnOps}, opts)
	}
	commits := &commitCounter{}
	cfg.Observer = commits
	c, err := core.New(cfg)
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	require.NoError(b, c.Start(ctx))
	defer func() { _ = c.Shutdown(context.Background()) }()
	payload := make([]byte, 128)
	b.ResetTimer()
	start := time.Now()
	produceEach(b, func(n int64) error {
		_, err := c.Send(ctx, fmt.Sprintf("c%d", n%e2eActors), payload, core.SendOptions{})
		return err
	})
	waitAcked(ctx, b, c)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if n := commits.batches.Load(); n > 0 {
		b.ReportMetric(float64(commits.messages.Load())/float64(n), "msgs/commit")
	}
}

// BenchmarkEtcdBaselineTxn is BenchmarkEtcdEndToEnd's baseline: the raw
// etcd writes of the same shape at the same concurrency, on a fresh
// 3-member cluster: for each message, a put of the message, then one
// transaction that checks the actor's epoch and writes its ack, its state
// and an outgoing message.
func BenchmarkEtcdBaselineTxn(b *testing.B) {
	endpoints := etcdtest.StartEmbeddedCluster(b, 3)
	cl, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
	require.NoError(b, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for i := range e2eActors {
		_, err := cl.Put(ctx, fmt.Sprintf("/raw/e/c%d", i), "1")
		require.NoError(b, err)
	}
	payload := string(make([]byte, 128))
	b.ResetTimer()
	start := time.Now()
	produceEach(b, func(n int64) error {
		actor := fmt.Sprintf("c%d", n%e2eActors)
		if _, err := cl.Put(ctx, fmt.Sprintf("/raw/q/%s/%d", actor, n), payload); err != nil {
			return err
		}
		_, err := cl.Txn(ctx).If(clientv3.Compare(clientv3.Value("/raw/e/"+actor), "=", "1")).Then(
			clientv3.OpPut("/raw/c/"+actor, fmt.Sprint(n)),
			clientv3.OpPut("/raw/s/"+actor, payload),
			clientv3.OpPut(fmt.Sprintf("/raw/q/out/%d", n), payload),
		).Commit()
		return err
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// produceEach runs e2eProducers goroutines that call send for each of b.N
// message numbers, and waits for them.
func produceEach(b *testing.B, send func(n int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range e2eProducers {
		wg.Go(func() {
			for n := next.Add(1) - 1; n < int64(b.N); n = next.Add(1) - 1 {
				if err := send(n); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
