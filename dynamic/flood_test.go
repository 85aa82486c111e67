package dynamic_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/dynamic"
)

// recordingHandler keeps every record's message, for tests that check what
// the host logged.
type recordingHandler struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newRecorder() (*slog.Logger, func() []string) {
	h := recordingHandler{mu: &sync.Mutex{}, msgs: new([]string)}
	return slog.New(h), func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return append([]string(nil), *h.msgs...)
	}
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordingHandler) WithGroup(string) slog.Handler      { return h }

// cpuTime is this process's user+system CPU time so far.
func cpuTime(t testing.TB) time.Duration {
	var ru unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestOutputFloodIsDroppedCheaply floods stdout and stderr (raw and through
// go-plugin's forwarded os.Stdout/os.Stderr) for a few seconds and checks
// that the host logs a bounded number of records, reports what it dropped
// in one summary rather than a warning per line, and spends little CPU on
// the flood. The CPU bound is generous (a loaded 2-core machine); the
// figures are logged.
func TestOutputFloodIsDroppedCheaply(t *testing.T) {
	log, records := newRecorder()
	cfg := config(t, "flood")
	cfg.Logger = log
	cfg.OutputRate, cfg.OutputBurst = 20, 20
	m := start(t, cfg)
	_, err := m.Handle(context.Background(), dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 1, Data: []byte("0")}, Messages: msgs("go")})
	require.NoError(t, err)

	const window = 3 * time.Second
	cpu0, t0 := cpuTime(t), time.Now()
	<-time.After(window) // a measurement window, not a wait for a condition
	cpu, wall := cpuTime(t)-cpu0, time.Since(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, m.Stop(ctx))

	var lines, summaries, other int
	for _, r := range records() {
		switch {
		case strings.HasPrefix(r, "plugin stdout"), strings.HasPrefix(r, "plugin stderr"):
			lines++
		case strings.HasPrefix(r, "dropped ") && strings.Contains(r, " of plugin output in the last "):
			summaries++
		case strings.Contains(r, "rate-limited"):
			t.Fatalf("a per-line rate-limit warning was logged: %q", r)
		default:
			other++
			t.Logf("other record: %q", r)
		}
	}
	t.Logf("flood for %s: host CPU %s (%.0f%% of one core); %d output lines, %d drop summaries, %d other records",
		wall.Round(time.Millisecond), cpu.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds(), lines, summaries, other)
	maxLines := int(20 + 20*(wall.Seconds()+2)) // burst + rate over the window and the start and stop around it
	require.LessOrEqual(t, lines, maxLines, "logged plugin lines must stay within the rate limit")
	require.Greater(t, lines, 5, "some of the output must reach the log")
	require.Equal(t, 1, summaries, "one drop summary (the window is under the 10s interval; the rest is flushed at the end)")
	require.Less(t, cpu.Seconds(), 0.5*wall.Seconds(), fmt.Sprintf("the host spent %s of CPU on %s of flood", cpu, wall))
}
