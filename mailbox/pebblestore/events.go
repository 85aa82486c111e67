package pebblestore

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// summaryInterval is how often a repeating engine error is logged again,
// with the count of repeats in between. The engine retries a failed flush
// or compaction at once, so on a full disk the same error comes thousands
// of times a second; one line per interval says as much.
const summaryInterval = 10 * time.Second

// errorSummary logs the first of a run of errors with the same key, then
// at most one line per interval with how many came since, and one line
// when the run ends.
type errorSummary struct {
	logger   *slog.Logger
	store    string
	interval time.Duration

	mu   sync.Mutex
	runs map[string]*errorRun
}

type errorRun struct {
	since, logged time.Time
	count, quiet  int
}

func newErrorSummary(logger *slog.Logger, store string) *errorSummary {
	return &errorSummary{logger: logger, store: store, interval: summaryInterval, runs: map[string]*errorRun{}}
}

// report counts one error of the run key and logs it if its turn came.
func (e *errorSummary) report(key, msg string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	r := e.runs[key]
	if r == nil {
		e.runs[key] = &errorRun{since: now, logged: now, count: 1}
		e.logger.Error(msg, "store", e.store, "err", err, "component", "pebble")
		return
	}
	r.count++
	r.quiet++
	if now.Sub(r.logged) < e.interval {
		return
	}
	e.logger.Error(msg, "store", e.store, "err", err, "component", "pebble",
		"repeats", r.quiet, "failing_since", r.since.Format(time.RFC3339))
	r.logged, r.quiet = now, 0
}

// ended closes the run key, if one is open, with a line saying so.
func (e *errorSummary) ended(key, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.runs[key]
	if r == nil {
		return
	}
	delete(e.runs, key)
	e.logger.Info(msg, "store", e.store, "component", "pebble", "failures", r.count,
		"failed_for", time.Since(r.since).Round(time.Millisecond).String())
}

// eventListener routes the engine's events into the store: damage is
// reported (and makes Open refuse the store), background errors are
// summarized, write stalls are logged.
func (s *Store) eventListener() *pebble.EventListener {
	const bg = "background"
	return &pebble.EventListener{
		DataCorruption: s.reportCorruption,
		BackgroundError: func(err error) {
			s.errs.report(bg, "store background work failed; the engine retries it", err)
		},
		FlushEnd: func(info pebble.FlushInfo) {
			if info.Err == nil {
				s.errs.ended(bg, "store background work succeeds again")
			}
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			if info.Err == nil {
				s.errs.ended(bg, "store background work succeeds again")
			}
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			s.opts.Logger.Warn("store writes stalled until the engine catches up", "store", s.path, "reason", info.Reason)
		},
		WriteStallEnd: func() {
			s.opts.Logger.Info("store writes resumed", "store", s.path)
		},
	}
}

// pebbleLogger routes the engine's logs into slog, summarizing repeated
// errors. A fatal engine error panics (the engine must not go on): the
// store turns that panic into an error where it can (see Store.apply and
// Store.openEngine).
type pebbleLogger struct {
	l    *slog.Logger
	errs *errorSummary
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.errs == nil {
		p.l.Error(msg, "component", "pebble")
		return
	}
	p.errs.report("log:"+format, "store engine error", fmt.Errorf("%s", msg))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}
