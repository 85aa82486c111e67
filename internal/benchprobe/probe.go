// Package benchprobe measures what a benchmark's throughput is made of, so
// a missed target can be explained with numbers rather than guessed at:
// the engine's fsync rounds (how many per second, how long each, how many
// writes and bytes share one) and the CPU that the benchmark process and
// its child processes (the plugins) used.
//
// It reads pebble's own counters (the WAL fsync latency histogram and the
// bytes written to the log) and /proc; nothing here changes what is
// measured. Benchmarks only: it reports through testing.B.
package benchprobe

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	dto "github.com/prometheus/client_model/go"
)

// snapshot is the counters at one moment.
type snapshot struct {
	at         time.Time
	fsyncs     uint64
	fsyncNanos float64
	walBytes   uint64
	lsmBytes   uint64 // written by flushes and compactions
	selfCPU    time.Duration
	childCPU   time.Duration
}

// Probe measures from Start to Report.
type Probe struct {
	metrics func() *pebble.Metrics
	start   snapshot
}

// Start snapshots the counters of the engine behind metrics (nil: measure
// CPU only).
func Start(metrics func() *pebble.Metrics) *Probe {
	p := &Probe{metrics: metrics}
	p.start = p.take()
	return p
}

func (p *Probe) take() snapshot {
	s := snapshot{at: time.Now(), selfCPU: selfCPU(), childCPU: childrenCPU()}
	if p.metrics == nil {
		return s
	}
	m := p.metrics()
	s.walBytes = m.WAL.BytesWritten
	total := m.Total()
	s.lsmBytes = total.TableBytesFlushed + total.TableBytesCompacted
	if h := m.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if err := h.Write(&d); err == nil && d.Histogram != nil {
			s.fsyncs = d.Histogram.GetSampleCount()
			s.fsyncNanos = d.Histogram.GetSampleSum()
		}
	}
	return s
}

// Report adds the figures since Start to b's output. writes is how many
// engine batches the benchmark committed in that time (each synced
// enqueue, each commit), so writes per fsync is the group commit's
// sharing.
func (p *Probe) Report(b *testing.B, writes int64) {
	end := p.take()
	secs := end.at.Sub(p.start.at).Seconds()
	if secs <= 0 {
		return
	}
	b.ReportMetric((end.selfCPU-p.start.selfCPU).Seconds()/secs, "self-cores")
	b.ReportMetric((end.childCPU-p.start.childCPU).Seconds()/secs, "plugin-cores")
	if p.metrics == nil {
		return
	}
	fsyncs := float64(end.fsyncs - p.start.fsyncs)
	b.ReportMetric(fsyncs/secs, "fsyncs/s")
	b.ReportMetric(float64(end.lsmBytes-p.start.lsmBytes)/(1<<20)/secs, "lsm-MB/s")
	b.ReportMetric(float64(end.walBytes-p.start.walBytes)/(1<<20)/secs, "wal-MB/s")
	if fsyncs == 0 {
		return
	}
	b.ReportMetric((end.fsyncNanos-p.start.fsyncNanos)/fsyncs/1e6, "fsync-ms")
	b.ReportMetric(float64(writes)/fsyncs, "writes/fsync")
	b.ReportMetric(float64(end.walBytes-p.start.walBytes)/fsyncs, "bytes/fsync")
}

// selfCPU is the user+system time of this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childrenCPU is the user+system time of this process's live children,
// read from /proc (getrusage counts children only once they are reaped).
func childrenCPU() time.Duration {
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// The command may hold spaces and parentheses: fields start after
		// the last ')'.
		s := string(raw)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 || f[1] != self { // f[1] is the parent pid
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// EngineSync is the baseline that graft's durable figures are compared
// with: the raw engine (pebble with its default options, no graft code)
// doing b.N synced Sets of payload bytes from producers goroutines, keys
// spread over actors prefixes as graft spreads messages over mailboxes. It
// reports msgs/s and the probe's figures. Benchmarks of several packages
// run it, so each ratio can use a baseline measured in the same command.
func EngineSync(b *testing.B, producers, actors, payloadSize int) {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	payload := make([]byte, payloadSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	lat := make([][]time.Duration, producers)
	b.ResetTimer()
	probe := Start(db.Metrics)
	start := time.Now()
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1) - 1; n < int64(b.N); n = next.Add(1) - 1 {
				k := make([]byte, 17)
				k[0] = 'Q'
				binary.BigEndian.PutUint64(k[1:], uint64(n%int64(actors)))
				binary.BigEndian.PutUint64(k[9:], uint64(n))
				t0 := time.Now()
				if err := db.Set(k, payload, pebble.Sync); err != nil {
					b.Error(err)
					return
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	all := slices.Concat(lat...)
	if len(all) > 0 {
		slices.Sort(all)
		q := func(f float64) float64 { return float64(all[int(f*float64(len(all)-1))].Microseconds()) / 1000 }
		b.ReportMetric(q(0.50), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
	}
	probe.Report(b, int64(b.N))
}

// quietLogger keeps the raw engine's start-up chatter out of benchmark
// output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
