package proc

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Output relays a plugin's output lines into slog, rate-limited: a plugin
// that floods its output must not flood or slow the core's log. Lines over
// the limit are counted and reported as one "dropped" record. The caller
// keeps draining the pipes regardless, so the plugin never blocks on a full
// pipe because of us.
type Output struct {
	log   atomic.Pointer[slog.Logger]
	rate  float64 // lines per second
	burst float64

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int64
	pid     atomic.Int64
	head    bytes.Buffer // the first bytes of stderr, for start diagnostics
}

// NewOutput returns an Output logging through log at up to rate lines per
// second with bursts of burst lines.
func NewOutput(log *slog.Logger, rate, burst float64) *Output {
	o := &Output{rate: rate, burst: burst, tokens: burst}
	o.log.Store(log)
	return o
}

// SetLogger replaces the logger (once the behaviour name and version are
// known, they are added as attributes).
func (o *Output) SetLogger(l *slog.Logger) { o.log.Store(l) }

// SetPid records the plugin pid for log records.
func (o *Output) SetPid(pid int) { o.pid.Store(int64(pid)) }

const headMax = 2048

// Head returns the first bytes the plugin wrote on stderr or stdio.
func (o *Output) Head() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.head.String()
}

// Line logs one line from stream ("stderr", "stdout", "stdio-stderr"...).
func (o *Output) Line(stream string, line []byte) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	o.mu.Lock()
	if stream != "stdout" && o.head.Len() < headMax {
		n := min(len(line), headMax-o.head.Len())
		o.head.Write(line[:n])
		o.head.WriteByte('\n')
	}
	now := time.Now()
	if !o.last.IsZero() {
		o.tokens = min(o.burst, o.tokens+now.Sub(o.last).Seconds()*o.rate)
	}
	o.last = now
	if o.tokens < 1 {
		o.dropped++
		o.mu.Unlock()
		return
	}
	o.tokens--
	dropped := o.dropped
	o.dropped = 0
	o.mu.Unlock()
	l := o.log.Load()
	ctx := context.Background()
	if dropped > 0 {
		l.LogAttrs(ctx, slog.LevelWarn, "plugin output rate-limited", slog.Int64("pid", o.pid.Load()), slog.Int64("dropped_lines", dropped))
	}
	l.LogAttrs(ctx, slog.LevelInfo, "plugin "+stream, slog.Int64("pid", o.pid.Load()), slog.String("line", string(line)))
}

// Writer returns an io.Writer feeding Line for stream, for go-plugin's
// forwarded stdio (SyncStdout/SyncStderr). It never blocks on the log.
func (o *Output) Writer(stream string) *LineWriter { return &LineWriter{o: o, stream: stream} }

// LineWriter splits written bytes into lines for an Output.
type LineWriter struct {
	o      *Output
	stream string
	mu     sync.Mutex
	buf    []byte
}

// Write implements io.Writer.
func (w *LineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.buf = append(w.buf, b...)
			if len(w.buf) >= maxLine {
				w.o.Line(w.stream, w.buf[:maxLine])
				w.buf = w.buf[:0]
			}
			break
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, b[:i]...)
			w.o.Line(w.stream, w.buf)
			w.buf = w.buf[:0]
		} else {
			w.o.Line(w.stream, b[:i])
		}
		b = b[i+1:]
	}
	return n, nil
}
