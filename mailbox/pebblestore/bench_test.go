package pebblestore_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/benchprobe"
	"github.com/graft-host/graft/mailbox"
	"github.com/graft-host/graft/mailbox/pebblestore"
)

// The figures in docs/BENCHMARKS.md come from:
//
//	go test -run '^$' -bench . -benchtime 200000x ./mailbox/pebblestore/
//
// EnqueueDurable and BaselineEngineSync do the same synced 128-byte writes
// with the same concurrency (16 producers over 64 actors), one through graft
// and one straight into the engine, so their ratio is graft's overhead.

const (
	benchProducers = 16
	benchActors    = 64
	benchPayload   = 128
)

// latencies collects per-operation durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// runProducers runs fn b.N times over benchProducers goroutines and reports
// throughput and latency, and the engine's fsync rounds (metrics) over the
// run: each fn call is one engine write.
func runProducers(b *testing.B, metrics func() *pebble.Metrics, fn func(producer, n int) error) {
	var next atomic.Int64
	var lat latencies
	var wg sync.WaitGroup
	b.ResetTimer()
	probe := benchprobe.Start(metrics)
	start := time.Now()
	for p := 0; p < benchProducers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/benchProducers+1)
			for {
				n := int(next.Add(1)) - 1
				if n >= b.N {
					break
				}
				t0 := time.Now()
				if err := fn(p, n); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			lat.add(local)
		}(p)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	lat.report(b)
	probe.Report(b, int64(b.N))
}

func benchStore(b *testing.B, d mailbox.Durability) (*pebblestore.Store, []uint64) {
	s, err := pebblestore.Open(b.TempDir(), mailbox.Options{Durability: d})
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	epochs := make([]uint64, benchActors)
	for i := 0; i < benchActors; i++ {
		_, err := s.Register(context.Background(), actorName(i), "bench")
		require.NoError(b, err)
		epochs[i], err = s.Claim(context.Background(), actorName(i))
		require.NoError(b, err)
	}
	return s, epochs
}

func benchEnqueue(b *testing.B, d mailbox.Durability) {
	s, _ := benchStore(b, d)
	payload := make([]byte, benchPayload)
	ctx := context.Background()
	runProducers(b, s.Metrics, func(_, n int) error {
		_, err := s.Enqueue(ctx, actorName(n%benchActors), mailbox.Message{Sender: "bench", Payload: payload})
		return err
	})
}

// BenchmarkEnqueueDurable: durable (sync) enqueue, 16 producers, 64 actors.
func BenchmarkEnqueueDurable(b *testing.B) { benchEnqueue(b, mailbox.DurabilitySync) }

// BenchmarkEnqueueRelaxed: the same in relaxed mode.
func BenchmarkEnqueueRelaxed(b *testing.B) { benchEnqueue(b, mailbox.DurabilityRelaxed) }

// BenchmarkBaselineEngineSync: the raw engine doing the same synced writes
// with the same concurrency, no graft code.
func BenchmarkBaselineEngineSync(b *testing.B) {
	benchprobe.EngineSync(b, benchProducers, benchActors, benchPayload)
}

// benchCommit measures dequeue+commit: b.N messages are queued first, then
// one consumer per actor reads batches of up to 64 and commits each (ack +
// new state) while 16 producers keep enqueueing.
func benchCommit(b *testing.B, d mailbox.Durability) {
	s, epochs := benchStore(b, d)
	ctx := context.Background()
	payload := make([]byte, benchPayload)
	var fill sync.WaitGroup
	var next atomic.Int64
	for p := 0; p < benchProducers; p++ {
		fill.Add(1)
		go func() {
			defer fill.Done()
			for n := int(next.Add(1)) - 1; n < b.N; n = int(next.Add(1)) - 1 {
				if _, err := s.Enqueue(ctx, actorName(n%benchActors), mailbox.Message{Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	fill.Wait()

	stop := make(chan struct{})
	var producers sync.WaitGroup
	for p := 0; p < benchProducers; p++ {
		producers.Add(1)
		go func(p int) {
			defer producers.Done()
			for n := p; ; n += benchProducers {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Enqueue(ctx, actorName(n%benchActors), mailbox.Message{Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		}(p)
	}
	var acked atomic.Int64
	var consumers sync.WaitGroup
	state := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < benchActors; i++ {
		consumers.Add(1)
		go func(i int) {
			defer consumers.Done()
			a := actorName(i)
			for acked.Load() < int64(b.N) {
				ms, err := s.Read(ctx, a, 0, 64)
				if err != nil {
					b.Error(err)
					return
				}
				if len(ms) == 0 {
					continue
				}
				st := mailbox.State{Schema: 1, Module: "bench", Data: state}
				err = s.Commit(ctx, mailbox.Commit{Actor: a, Epoch: epochs[i], Through: ms[len(ms)-1].Seq, State: &st})
				if err != nil {
					b.Error(err)
					return
				}
				acked.Add(int64(len(ms)))
			}
		}(i)
	}
	consumers.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	producers.Wait()
	b.ReportMetric(float64(acked.Load())/elapsed.Seconds(), "msgs/s")
}

// BenchmarkCommit: dequeue+commit throughput with producers running, sync.
func BenchmarkCommit(b *testing.B) { benchCommit(b, mailbox.DurabilitySync) }

// BenchmarkCommitRelaxed: the same in relaxed mode.
func BenchmarkCommitRelaxed(b *testing.B) { benchCommit(b, mailbox.DurabilityRelaxed) }

// BenchmarkSpaceReclaim runs b.N enqueue+ack cycles through one actor with a
// backlog bounded at 1,000 messages and reports the store's size on disk:
// the largest seen (sampled every 100,000 cycles) and at the end. Run it
// with -benchtime 1000000x for the figure in docs/BENCHMARKS.md.
func BenchmarkSpaceReclaim(b *testing.B) {
	dir := b.TempDir()
	s, err := pebblestore.Open(dir, mailbox.Options{Durability: mailbox.DurabilityRelaxed})
	require.NoError(b, err)
	defer s.Close()
	ctx := context.Background()
	_, err = s.Register(ctx, "a", "bench")
	require.NoError(b, err)
	epoch, err := s.Claim(ctx, "a")
	require.NoError(b, err)
	payload := make([]byte, benchPayload)
	var peak int64
	b.ResetTimer()
	for n := 1; n <= b.N; n++ {
		r, err := s.Enqueue(ctx, "a", mailbox.Message{ID: fmt.Sprint(n), Payload: payload})
		require.NoError(b, err)
		if n%100 == 0 && r.Seq > 1000 {
			st := mailbox.State{Schema: 1, Data: payload}
			require.NoError(b, s.Commit(ctx, mailbox.Commit{Actor: "a", Epoch: epoch, Through: r.Seq - 1000, State: &st}))
		}
		if n%100_000 == 0 {
			peak = max(peak, dirSize(b, dir))
		}
	}
	b.StopTimer()
	final := dirSize(b, dir)
	b.ReportMetric(float64(max(peak, final))/(1<<20), "peak-MiB")
	b.ReportMetric(float64(final)/(1<<20), "final-MiB")
}

func dirSize(b *testing.B, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			total += fi.Size()
		}
		return nil
	})
	require.NoError(b, err)
	return total
}

// quietLogger keeps the raw engine's start-up chatter out of test output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
