package core_test

import (
	"context"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// The scale figures of issue 16 (docs/BENCHMARKS.md):
//
//	go test -p 1 -run '^$' -bench 'VirtualFirstSend|Timers' -benchtime 100000x ./core/
//	go test -p 1 -run '^$' -bench 'MillionActors' -benchtime 1x -timeout 60m ./core/

// virtualConfig is counterConfig plus a virtual counter behaviour "v"
// (actors v/KEY), sharing the counter plugin.
func virtualConfig(b *testing.B, dir string, actors int) core.Config {
	cfg := counterConfig(b, dir, mailbox.DurabilitySync, actors)
	cfg.Behaviours["v"] = core.BehaviourConfig{Binary: bin("counter"), Virtual: true, Env: []string{"COUNTER_NAME=v"}}
	return cfg
}

// produce runs n sends over e2eProducers goroutines, target(i) naming the
// actor of the i-th send, and returns how long they took.
func produce(b *testing.B, c *core.Core, n int, target func(i int) string) time.Duration {
	ctx := context.Background()
	payload := make([]byte, 128)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range e2eProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if _, err := c.Send(ctx, target(int(i)), payload, core.SendOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkVirtualFirstSend: b.N first sends, each creating a virtual
// actor in the write of its message, against b.N ordinary durable sends
// to existing actors in the same run (16 producers each). The ratio is
// first-send throughput over ordinary send throughput; the target is at
// least 0.8.
func BenchmarkVirtualFirstSend(b *testing.B) {
	c, err := core.New(virtualConfig(b, b.TempDir(), e2eActors))
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	require.NoError(b, c.Start(ctx))
	defer func() { _ = c.Shutdown(context.Background()) }()
	b.ResetTimer()
	ordinary := produce(b, c, b.N, func(i int) string { return "c" + strconv.Itoa(i%e2eActors) })
	first := produce(b, c, b.N, func(i int) string { return "v/" + strconv.Itoa(i) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/ordinary.Seconds(), "ordinary-sends/s")
	b.ReportMetric(float64(b.N)/first.Seconds(), "first-sends/s")
	b.ReportMetric(ordinary.Seconds()/first.Seconds(), "ratio")

	// One sender, one send at a time: what a send itself costs its
	// caller, each actor's start and first message then running beside
	// the next send.
	const one = 2000
	ordinaryLat := sendLatencies(b, c, one, func(i int) string { return "c" + strconv.Itoa(i%e2eActors) })
	firstLat := sendLatencies(b, c, one, func(i int) string { return "v/one-" + strconv.Itoa(i) })
	b.ReportMetric(p50ms(ordinaryLat), "ordinary-p50-ms")
	b.ReportMetric(p50ms(firstLat), "first-p50-ms")
}

// sendLatencies makes n sends one after another, to target(i), and
// returns how long each took.
func sendLatencies(b *testing.B, c *core.Core, n int, target func(i int) string) []time.Duration {
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		_, err := c.Send(context.Background(), target(i), []byte("x"), core.SendOptions{})
		require.NoError(b, err)
		lat[i] = time.Since(t0)
	}
	return lat
}

// p50ms is the median of lat in milliseconds.
func p50ms(lat []time.Duration) float64 {
	slices.Sort(lat)
	return float64(lat[len(lat)/2].Microseconds()) / 1000
}

// BenchmarkTimers: b.N timers (use 100000x) set from outside over 64
// actors, in four phases. Probe: with the b.N timers pending (due in an
// hour), 2,000 more are due at 500 a second, a load the core handles
// with room to spare; it reports lateness-p99-ms, from due to handled and
// committed (timers fire in due order, so the k-th message handled is the
// k-th timer due). Paced: b.N timers due at 10,000 a second, about the
// core's durable throughput, so that lateness-10k-p99-ms is bounded by
// it rather than by the timers. Burst: b.N timers all due at one instant;
// fired/s until the last is handled. Restart: the b.N pending timers
// across a restart of the core; restart-ms, New plus Start.
func BenchmarkTimers(b *testing.B) {
	dir := b.TempDir()
	c, err := core.New(counterConfig(b, dir, mailbox.DurabilitySync, e2eActors))
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	require.NoError(b, c.Start(ctx))
	b.ResetTimer()

	// Setting the timers takes a while (synced writes from 16
	// goroutines); the first is due once that is surely over.
	setup := func(n int) time.Duration { return time.Duration(n/5000+1) * time.Second }
	scheduleTimers(b, c, b.N, time.Now().Add(time.Hour), time.Minute)
	const probes = 2000
	due := scheduleTimers(b, c, probes, time.Now().Add(setup(probes)), probes*time.Second/500)
	b.ReportMetric(lateness(waitHandled(b, c, 0, probes), due), "lateness-p99-ms")

	due = scheduleTimers(b, c, b.N, time.Now().Add(setup(b.N)), time.Duration(b.N)*time.Second/10_000)
	b.ReportMetric(lateness(waitHandled(b, c, probes, b.N), due), "lateness-10k-p99-ms")

	at := time.Now().Add(setup(b.N))
	scheduleTimers(b, c, b.N, at, 0)
	burst := waitHandled(b, c, uint64(probes+b.N), b.N)
	b.ReportMetric(float64(b.N)/burst[b.N-1].Sub(at).Seconds(), "fired/s")
	b.StopTimer()

	require.NoError(b, c.Shutdown(context.Background()))
	start := time.Now()
	c2, err := core.New(counterConfig(b, dir, mailbox.DurabilitySync, e2eActors))
	require.NoError(b, err)
	require.NoError(b, c2.Start(ctx))
	took := time.Since(start)
	timers, err := c2.Timers(ctx, "c0")
	require.NoError(b, err)
	require.Len(b, timers, (b.N+e2eActors-1)/e2eActors, "pending timers lost in the restart")
	_ = c2.Shutdown(context.Background())
	b.ReportMetric(float64(took.Milliseconds()), "restart-ms")
}

// lateness is the 99th percentile, in milliseconds, of how long after
// its due time each timer was handled.
func lateness(handled, due []time.Time) float64 {
	late := make([]time.Duration, len(due))
	for i := range late {
		late[i] = max(0, handled[i].Sub(due[i]))
	}
	return p99ms(late)
}

// scheduleTimers sets n timers to c0..c63 from 16 goroutines, the i-th
// due at from + span*i/n, and returns the due times.
func scheduleTimers(b *testing.B, c *core.Core, n int, from time.Time, span time.Duration) []time.Time {
	due := make([]time.Time, n)
	for i := range due {
		due[i] = from.Add(span * time.Duration(i) / time.Duration(n))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range e2eProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if _, err := c.SendAfter(context.Background(), "c"+strconv.Itoa(int(i)%e2eActors), []byte("t"), due[i]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.True(b, time.Now().Before(from), "setting the timers took longer than planned")
	return due
}

// waitHandled waits until n more messages than before (acked over c0..c63)
// are handled, and returns when the k-th of them was first seen handled.
func waitHandled(b *testing.B, c *core.Core, before uint64, n int) []time.Time {
	handled := make([]time.Time, 0, n)
	deadline := time.Now().Add(10 * time.Minute)
	for len(handled) < n {
		require.True(b, time.Now().Before(deadline), "only %d of %d timers handled", len(handled), n)
		var acked uint64
		for i := range e2eActors {
			s, err := c.Store().Stats("c" + strconv.Itoa(i))
			require.NoError(b, err)
			acked += s.Acked
		}
		now := time.Now()
		for uint64(len(handled)) < acked-before && len(handled) < n {
			handled = append(handled, now)
		}
		time.Sleep(time.Millisecond)
	}
	return handled
}

// BenchmarkMillionActors: 1,000,000 registered actors (GRAFT_BENCH_ACTORS
// for fewer) of a behaviour that passivates idle actors, 1% of them sent
// a message after start, one at a time. The registry is made by a first
// core (register-ms, not a figure of interest), then a second core on the
// same store is measured: start-ms (New and Start, until it serves),
// rss-MiB once 1% of the actors are active, and activate-p99-ms, from a
// send to a passive actor until its message is handled and committed.
// send-p99-ms is the same for a second message to the same, now active,
// actors: the baseline of the same run (one synced enqueue, one plugin
// round trip, one synced commit).
func BenchmarkMillionActors(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("GRAFT_BENCH_ACTORS")); err == nil {
		n = v
	}
	for range b.N {
		dir := b.TempDir()
		cfg := counterConfig(b, dir, mailbox.DurabilitySync, n)
		counter := cfg.Behaviours["counter"]
		counter.PassivateAfter = time.Hour
		cfg.Behaviours["counter"] = counter
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		t0 := time.Now()
		c, err := core.New(cfg)
		require.NoError(b, err)
		require.NoError(b, c.Start(ctx))
		b.ReportMetric(float64(time.Since(t0).Milliseconds()), "register-ms")
		require.NoError(b, c.Shutdown(ctx))
		runtime.GC()

		commits := &commitSignal{}
		cfg.Observer = commits
		stopProfile := startCPUProfile(b, os.Getenv("GRAFT_BENCH_STARTPROFILE"))
		start := time.Now()
		c, err = core.New(cfg)
		require.NoError(b, err)
		require.NoError(b, c.Start(ctx))
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "start-ms")
		stopProfile()
		activate := sendEach(b, ctx, c, commits, n)
		send := sendEach(b, ctx, c, commits, n)
		// The memory the core holds, not what the collector has yet to
		// give back (its scavenger returns it within minutes anyway).
		debug.FreeOSMemory()
		b.ReportMetric(rssMiB(), "rss-MiB")
		if path := os.Getenv("GRAFT_BENCH_HEAPPROFILE"); path != "" {
			writeHeapProfile(b, path)
		}
		b.ReportMetric(p99ms(activate), "activate-p99-ms")
		b.ReportMetric(p99ms(send), "send-p99-ms")
		waitStatuses(b, ctx, c, map[string]int{"running": (n + 99) / 100, core.StatusPassive: n - (n+99)/100})
		_ = c.Shutdown(context.Background())
		cancel()
	}
}

// startCPUProfile profiles the CPU into path until the returned function
// is called (nothing if path is empty): the start alone, which
// -cpuprofile cannot single out.
func startCPUProfile(b *testing.B, path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	require.NoError(b, err)
	require.NoError(b, pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// writeHeapProfile writes the live heap to path, for pprof.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	require.NoError(b, err)
	defer f.Close()
	require.NoError(b, pprof.Lookup("heap").WriteTo(f, 0))
}

// sendEach sends one message to every 100th of the n actors c0..c(n-1),
// one at a time, each until its commit is reported (commits), and
// returns how long each took.
func sendEach(b *testing.B, ctx context.Context, c *core.Core, commits *commitSignal, n int) []time.Duration {
	var lat []time.Duration
	for i := 0; i < n; i += 100 {
		actor := "c" + strconv.Itoa(i)
		done := commits.expect(actor)
		t0 := time.Now()
		_, err := c.Send(ctx, actor, []byte("x"), core.SendOptions{})
		require.NoError(b, err)
		select {
		case <-done:
		case <-ctx.Done():
			b.Fatalf("no commit of %s: %v", actor, ctx.Err())
		}
		lat = append(lat, time.Since(t0))
	}
	return lat
}

// commitSignal is an Observer that closes a channel at the next commit
// of an actor, so that a benchmark waits for a commit without polling.
type commitSignal struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
}

// expect returns a channel closed at actor's next commit.
func (s *commitSignal) expect(actor string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == nil {
		s.waiting = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	s.waiting[actor] = ch
	return ch
}

func (s *commitSignal) BatchCommitted(actor, _, _ string, _ int, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.waiting[actor]; ok {
		close(ch)
		delete(s.waiting, actor)
	}
}
func (s *commitSignal) MessageFailed(string, string) {}
func (s *commitSignal) DeadLettered(string, string)  {}
func (s *commitSignal) ModuleStarted(string, bool)   {}
func (s *commitSignal) Passivated(string)            {}
func (s *commitSignal) Woken(string)                 {}

// p99ms is the 99th percentile of lat in milliseconds.
func p99ms(lat []time.Duration) float64 {
	slices.Sort(lat)
	return float64(lat[len(lat)*99/100].Microseconds()) / 1000
}

// waitStatuses waits until c's actors count want of each status.
func waitStatuses(b *testing.B, ctx context.Context, c *core.Core, want map[string]int) {
	for {
		list, err := c.Status(ctx)
		require.NoError(b, err)
		got := map[string]int{}
		for _, s := range list {
			got[s.Status]++
		}
		if maps.Equal(got, want) {
			return
		}
		require.NoError(b, ctx.Err(), "actors by status: %v, want %v", got, want)
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRunning waits until n actors of c are running.
func waitRunning(b *testing.B, ctx context.Context, c *core.Core, n int) {
	for {
		list, err := c.Status(ctx)
		require.NoError(b, err)
		running := 0
		for _, s := range list {
			if s.Status == "running" {
				running++
			}
		}
		if running == n {
			return
		}
		require.NoError(b, ctx.Err(), "only %d of %d actors running", running, n)
		time.Sleep(100 * time.Millisecond)
	}
}
