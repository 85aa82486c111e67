package core_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/benchprobe"
	"github.com/graft-host/graft/mailbox"
)

// The figures in docs/BENCHMARKS.md come from (the engine baseline runs in
// the same command so the ratio is meaningful on a shared machine):
//
//	go test -p 1 -run '^$' -bench 'EndToEnd|BaselineEngineSync' -benchtime 100000x ./core/ ./mailbox/pebblestore/
//	go test -run '^$' -bench Start100kActors -benchtime 1x ./core/

const (
	e2eActors    = 64
	e2eProducers = 16
)

func counterConfig(b *testing.B, dir string, d mailbox.Durability, actors int) core.Config {
	cfg := core.Config{
		OpenStore:  storeOpener(dir, d),
		Behaviours: map[string]core.BehaviourConfig{"counter": {Binary: bin("counter")}},
		Logger:     testLogger(b),
		SocketDir:  os.TempDir(),
	}
	for i := 0; i < actors; i++ {
		cfg.Actors = append(cfg.Actors, core.ActorConfig{Name: fmt.Sprintf("c%d", i), Behaviour: "counter"})
	}
	return cfg
}

// benchEndToEnd: 16 producers send b.N 128-byte messages to 64 actors of
// one behaviour (one shared plugin process); the clock stops when every
// message has been handled by the plugin and its effect committed.
func benchEndToEnd(b *testing.B, d mailbox.Durability) {
	cfg := counterConfig(b, b.TempDir(), d, e2eActors)
	commits := &commitCounter{}
	cfg.Observer = commits
	var engine interface{ Metrics() *pebble.Metrics }
	open := cfg.OpenStore
	cfg.OpenStore = func(opts mailbox.Options) (mailbox.Store, error) {
		s, err := open(opts)
		engine, _ = s.(interface{ Metrics() *pebble.Metrics })
		return s, err
	}
	c, err := core.New(cfg)
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	require.NoError(b, c.Start(ctx))
	defer func() { _ = c.Shutdown(context.Background()) }()
	payload := make([]byte, 128)
	var next atomic.Int64
	var wg sync.WaitGroup
	require.NotNil(b, engine, "the store is not pebblestore")
	b.ResetTimer()
	probe := benchprobe.Start(engine.Metrics)
	start := time.Now()
	for p := 0; p < e2eProducers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1) - 1; n < int64(b.N); n = next.Add(1) - 1 {
				if _, err := c.Send(ctx, fmt.Sprintf("c%d", n%e2eActors), payload, core.SendOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitAcked(ctx, b, c)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	n := commits.batches.Load()
	probe.Report(b, int64(b.N)+n) // one write per enqueue and per commit
	if n > 0 {
		b.ReportMetric(float64(commits.messages.Load())/float64(n), "msgs/commit")
	}
}

// waitAcked waits until the e2eActors actors have acked b.N messages in
// all, polling the store's counters (no disk) every millisecond.
func waitAcked(ctx context.Context, b *testing.B, c *core.Core) {
	for {
		var acked uint64
		for i := 0; i < e2eActors; i++ {
			s, err := c.Store().Stats(fmt.Sprintf("c%d", i))
			require.NoError(b, err)
			acked += s.Acked
		}
		if acked >= uint64(b.N) {
			return
		}
		if ctx.Err() != nil {
			b.Fatal("messages were not all processed in time")
		}
		time.Sleep(time.Millisecond)
	}
}

// commitCounter counts the core's batch commits.
type commitCounter struct {
	batches, messages atomic.Int64
}

func (c *commitCounter) BatchCommitted(_, _, _ string, n int, _ time.Duration) {
	c.batches.Add(1)
	c.messages.Add(int64(n))
}
func (c *commitCounter) MessageFailed(string, string) {}
func (c *commitCounter) DeadLettered(string, string)  {}
func (c *commitCounter) ModuleStarted(string, bool)   {}
func (c *commitCounter) Passivated(string)            {}
func (c *commitCounter) Woken(string)                 {}

// BenchmarkE2EBaselineEngineSync is the end-to-end figures' baseline, run
// in the same command right before them so that the disk's drift between
// packages does not enter the ratio: the raw engine's synced writes with
// the same 16 producers over 64 actors and 128-byte payloads (the same
// code as pebblestore's BenchmarkBaselineEngineSync).
func BenchmarkE2EBaselineEngineSync(b *testing.B) {
	benchprobe.EngineSync(b, e2eProducers, e2eActors, 128)
}

// BenchmarkEndToEndDurable: send, handled by a real plugin, committed; 64
// actors of one behaviour; sync durability.
func BenchmarkEndToEndDurable(b *testing.B) { benchEndToEnd(b, mailbox.DurabilitySync) }

// BenchmarkEndToEndRelaxed: the same with relaxed durability.
func BenchmarkEndToEndRelaxed(b *testing.B) { benchEndToEnd(b, mailbox.DurabilityRelaxed) }

// BenchmarkStart100kActors registers and starts 100,000 actors of one
// behaviour and reports the time until all run and the heap they hold.
func BenchmarkStart100kActors(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("GRAFT_BENCH_ACTORS")); err == nil {
		n = v // smaller runs, for profiling
	}
	for i := 0; i < b.N; i++ {
		cfg := counterConfig(b, b.TempDir(), mailbox.DurabilitySync, n)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		c, err := core.New(cfg)
		require.NoError(b, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		require.NoError(b, c.Start(ctx))
		waitRunning(b, ctx, c, n)
		elapsed := time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(elapsed.Milliseconds()), "start-ms")
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		b.ReportMetric(rssMiB(), "rss-MiB")
		_ = c.Shutdown(context.Background())
		cancel()
	}
}

// rssMiB is this process's resident memory, from /proc/self/status.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}
