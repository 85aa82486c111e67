package proc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Output relays a plugin's output into slog, rate-limited: a plugin that
// floods its output must not flood the core's log nor burn the core's CPU.
// Output arrives in chunks (a pipe read, a go-plugin stdio message); while
// the token bucket is empty a whole chunk is dropped at the cost of counting
// its newlines, with no per-line work. What was dropped is reported once per
// interval, as "dropped N lines (M bytes) of plugin output in the last 10s".
// The pipes are drained at full speed regardless, so the plugin never
// blocks on a full pipe because of the log.
type Output struct {
	log      atomic.Pointer[slog.Logger]
	pid      atomic.Int64
	rate     float64 // lines per second
	burst    float64
	interval time.Duration // of drop summaries

	mu        sync.Mutex
	tokens    float64
	last      time.Time
	dropLines int64
	dropBytes int64
	dropSince time.Time
	summary   *time.Timer // pending drop summary
	head      bytes.Buffer
}

// DropInterval is how often dropped output is summarised.
const DropInterval = 10 * time.Second

// NewOutput returns an Output logging through log at up to rate lines per
// second with bursts of burst lines.
func NewOutput(log *slog.Logger, rate, burst float64) *Output {
	o := &Output{rate: rate, burst: burst, tokens: burst, interval: DropInterval}
	o.log.Store(log)
	return o
}

// SetLogger replaces the logger (once the behaviour name and version are
// known, they are added as attributes).
func (o *Output) SetLogger(l *slog.Logger) { o.log.Store(l) }

// SetPid records the plugin pid for log records.
func (o *Output) SetPid(pid int) { o.pid.Store(int64(pid)) }

const headMax = 2048

// Head returns the first bytes the plugin wrote on stderr, for start
// diagnostics (what a plugin says first is what says why it failed).
func (o *Output) Head() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.head.String()
}

// Writer returns the writer of one stream ("stdout", "stderr"), for the
// raw pipes and for go-plugin's forwarded stdio (SyncStdout/SyncStderr).
// It never blocks on the log and never fails.
func (o *Output) Writer(stream string) *Stream { return &Stream{o: o, name: stream} }

// Close reports what is still counted as dropped, at once: the module is
// ending and its last summary must not wait for the interval.
func (o *Output) Close() {
	o.mu.Lock()
	if o.summary != nil {
		o.summary.Stop()
		o.summary = nil
	}
	o.mu.Unlock()
	o.flushDrops()
}

// Warn logs a problem of the host with this plugin (not the plugin's own
// output), never rate-limited.
func (o *Output) Warn(msg string, args ...any) {
	o.log.Load().Warn(msg, append([]any{"pid", o.pid.Load()}, args...)...)
}

// Dropping says whether output is being dropped now (no tokens left).
func (o *Output) Dropping() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refill(time.Now())
	return o.tokens < 1
}

// refill adds the tokens earned since the last chunk. Callers hold o.mu.
func (o *Output) refill(now time.Time) {
	if !o.last.IsZero() {
		o.tokens = min(o.burst, o.tokens+now.Sub(o.last).Seconds()*o.rate)
	}
	o.last = now
}

// dropped counts dropped output and makes sure a summary is due. Callers
// hold o.mu.
func (o *Output) dropped(lines, n int) {
	if lines == 0 && n == 0 {
		return
	}
	o.dropLines += int64(lines)
	o.dropBytes += int64(n)
	if o.summary == nil {
		o.dropSince = time.Now()
		o.summary = time.AfterFunc(o.interval, o.flushDrops)
	}
}

// flushDrops logs one summary of what was dropped since the last one.
func (o *Output) flushDrops() {
	o.mu.Lock()
	lines, n, since := o.dropLines, o.dropBytes, o.dropSince
	o.dropLines, o.dropBytes, o.summary = 0, 0, nil
	o.mu.Unlock()
	if lines == 0 && n == 0 {
		return
	}
	took := time.Since(since).Round(100 * time.Millisecond)
	if took > o.interval-time.Second {
		took = o.interval
	}
	o.log.Load().LogAttrs(context.Background(), slog.LevelWarn,
		fmt.Sprintf("dropped %d lines (%d bytes) of plugin output in the last %s", lines, n, took),
		slog.Int64("pid", o.pid.Load()), slog.Int64("dropped_lines", lines), slog.Int64("dropped_bytes", n))
}

// Stream splits one stream's chunks into lines for its Output. A line is
// cut at maxLine bytes; the rest of it is dropped.
type Stream struct {
	o     *Output
	name  string
	mu    sync.Mutex
	carry []byte // the start of a line whose end has not arrived
	skip  bool   // drop up to the next newline (already counted)
}

const maxLine = 4096

// Write implements io.Writer.
func (s *Stream) Write(b []byte) (int, error) {
	n := len(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	o := s.o
	o.mu.Lock()
	if s.name != "stdout" && o.head.Len() < headMax {
		o.head.Write(b[:min(len(b), headMax-o.head.Len())])
	}
	o.refill(time.Now())
	for len(b) > 0 {
		if o.tokens < 1 {
			s.dropRest(b)
			break
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = s.partial(b, out)
			break
		}
		seg := b[:i]
		b = b[i+1:]
		if s.skip {
			s.skip = false
			o.dropped(0, len(seg)+1)
			continue
		}
		out = append(out, s.line(seg))
	}
	o.mu.Unlock()
	s.emit(out)
	return n, nil
}

// dropRest drops b, and the line in progress with it: each line whose end
// is dropped counts once, a trailing partial line included. Callers hold
// both locks.
func (s *Stream) dropRest(b []byte) {
	lines := bytes.Count(b, []byte{'\n'})
	if s.skip && lines > 0 {
		lines-- // the line being skipped was counted already
	}
	trailing := b[len(b)-1] != '\n'
	if trailing && (lines > 0 || !s.skip) {
		lines++
	}
	s.o.dropped(lines, len(b)+len(s.carry))
	s.carry = s.carry[:0]
	s.skip = trailing
}

// partial keeps the start of a line; a line that reaches maxLine is logged
// cut and the rest of it dropped. Callers hold both locks.
func (s *Stream) partial(b []byte, out []string) []string {
	if s.skip {
		s.o.dropped(0, len(b))
		return out
	}
	room := maxLine - len(s.carry)
	if len(b) < room {
		s.carry = append(s.carry, b...)
		return out
	}
	s.carry = append(s.carry, b[:room]...)
	s.o.dropped(0, len(b)-room)
	line := s.line(nil)
	s.skip = true
	return append(out, line)
}

// line takes a token and returns carry+seg as one line (cut at maxLine,
// without its line end). Callers hold both locks.
func (s *Stream) line(seg []byte) string {
	s.o.tokens--
	var l string
	if len(s.carry) > 0 {
		s.carry = append(s.carry, seg[:min(len(seg), maxLine-len(s.carry))]...)
		l = string(s.carry)
		s.carry = s.carry[:0]
	} else {
		l = string(seg[:min(len(seg), maxLine)])
	}
	return strings.TrimRight(l, "\r")
}

// Flush logs a last line that had no line end (at EOF).
func (s *Stream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.carry) == 0 {
		return
	}
	o := s.o
	o.mu.Lock()
	o.refill(time.Now())
	var out []string
	if o.tokens >= 1 {
		out = append(out, s.line(nil))
	} else {
		o.dropped(1, len(s.carry))
		s.carry = s.carry[:0]
	}
	o.mu.Unlock()
	s.emit(out)
}

// emit logs lines, outside the Output's lock.
func (s *Stream) emit(lines []string) {
	if len(lines) == 0 {
		return
	}
	l := s.o.log.Load()
	pid := s.o.pid.Load()
	for _, line := range lines {
		l.LogAttrs(context.Background(), slog.LevelInfo, "plugin "+s.name, slog.Int64("pid", pid), slog.String("line", line))
	}
}
