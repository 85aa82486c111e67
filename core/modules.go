package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/graft-host/graft/dynamic"
)

// modulePool keeps one module (plugin process) of one behaviour running for
// the actors that use it: all actors of the behaviour by default, or a
// single actor that asked for a process of its own. It starts the process
// on first use and starts a new generation after a crash or hang, with
// exponential backoff between failed generations. It never holds state: a
// generation can be replaced at any moment between two commits.
type modulePool struct {
	name string // behaviour name, or behaviour/actor for a private pool
	log  *slog.Logger

	mu       sync.Mutex
	cfg      dynamic.Config
	cur      *dynamic.Instance
	starting chan struct{} // closed when the start in progress ends
	startErr error         // error of the last start, while backing off
	failures int           // consecutive failed generations
	retryAt  time.Time     // no new start before this
	closed   bool
	restarts int // generations started after the first
	lastExit string
	onStart  func(restart bool) // metrics hook, may be nil
	info     dynamic.Info       // of the last generation started (the pool's binary is fixed)
}

const (
	poolBackoffMin = 20 * time.Millisecond
	poolBackoffMax = 2 * time.Second
)

func newModulePool(name string, cfg dynamic.Config, log *slog.Logger) *modulePool {
	return &modulePool{name: name, cfg: cfg, log: log}
}

// errPoolClosed is returned once the pool has been closed.
var errPoolClosed = errors.New("module pool is closed")

// get returns a running module, starting one if needed. Concurrent callers
// share one start. A permanent start failure (a bad binary) is returned at
// once until the pool's binary changes; a transient one after the backoff.
func (p *modulePool) get(ctx context.Context) (*dynamic.Instance, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, fmt.Errorf("behaviour %s: %w", p.name, errPoolClosed)
		}
		if p.cur != nil && p.cur.Err() == nil {
			m := p.cur
			p.mu.Unlock()
			return m, nil
		}
		if p.cur != nil { // it ended: note how, and start a new generation
			p.noteExit(p.cur)
			p.cur = nil
		}
		if p.starting != nil {
			wait := p.starting
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("behaviour %s: waiting for its module to start: %w", p.name, ctx.Err())
			}
		}
		if p.startErr != nil && errors.Is(p.startErr, dynamic.ErrBadBinary) {
			err := p.startErr
			p.mu.Unlock()
			return nil, err
		}
		if d := time.Until(p.retryAt); d > 0 {
			p.mu.Unlock()
			t := time.NewTimer(d)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("behaviour %s: backing off after a failed module start: %w", p.name, ctx.Err())
			}
		}
		done := make(chan struct{})
		p.starting = done
		cfg := p.cfg
		p.mu.Unlock()

		m, err := dynamic.Start(ctx, cfg)

		p.mu.Lock()
		p.starting = nil
		close(done)
		if p.closed && m != nil {
			p.mu.Unlock()
			stopModule(m, cfg.StopTimeout)
			return nil, fmt.Errorf("behaviour %s: %w", p.name, errPoolClosed)
		}
		if err != nil {
			p.startErr = err
			p.failures++
			p.retryAt = time.Now().Add(backoff(p.failures, poolBackoffMin, poolBackoffMax))
			p.mu.Unlock()
			p.log.Error("module start failed", "behaviour", p.name, "err", err)
			return nil, err
		}
		restart := p.startErr != nil || p.lastExit != ""
		if restart {
			p.restarts++
		}
		p.cur, p.startErr, p.info = m, nil, m.Info()
		onStart := p.onStart
		p.mu.Unlock()
		if onStart != nil {
			onStart(restart)
		}
		p.log.Info("module started", "behaviour", p.name, "version", m.Info().CodeVersion, "pid", m.Pid())
		go p.watch(m)
		return m, nil
	}
}

// watch notices a generation's end so status shows it at once.
func (p *modulePool) watch(m *dynamic.Instance) {
	<-m.Exited()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == m {
		p.noteExit(m)
		p.cur = nil
	}
}

// noteExit records how a generation ended and counts an abnormal end as a
// failure for the backoff. Callers hold p.mu.
func (p *modulePool) noteExit(m *dynamic.Instance) {
	err := m.Err()
	if ex, ok := m.ExitStatus(); ok {
		p.lastExit = fmt.Sprintf("pid %d: %v", m.Pid(), ex)
	}
	if err != nil && !errors.Is(err, dynamic.ErrStopped) {
		p.failures++
		p.retryAt = time.Now().Add(backoff(p.failures, poolBackoffMin, poolBackoffMax))
		p.log.Warn("module ended", "behaviour", p.name, "pid", m.Pid(), "err", err)
	}
}

// healthy resets the failure count after a generation served a batch.
func (p *modulePool) healthy() {
	p.mu.Lock()
	p.failures = 0
	p.mu.Unlock()
}

// kill stops the running generation (e.g. after it hung) so the next get
// starts a fresh one.
func (p *modulePool) kill(m *dynamic.Instance, timeout time.Duration) {
	stopModule(m, timeout)
}

// close stops the pool's module and refuses further gets.
func (p *modulePool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	m := p.cur
	p.cur = nil
	p.mu.Unlock()
	if m == nil {
		return nil
	}
	if err := m.Stop(ctx); err != nil {
		return fmt.Errorf("stop module of %s: %w", p.name, err)
	}
	return nil
}

// config returns the dynamic.Config the pool starts its modules with.
func (p *modulePool) config() dynamic.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// current returns the running generation, or nil.
func (p *modulePool) current() *dynamic.Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && p.cur.Err() == nil {
		return p.cur
	}
	return nil
}

// status is what the control API shows about the pool.
type poolStatus struct {
	// Version and Schema are the code and state schema versions of the
	// pool's module: its running generation's or, between generations,
	// the last one's (every generation runs the same binary); "" and 0
	// before one ever started.
	Version  string
	Schema   uint32
	Pid      int
	Restarts int
	LastExit string
}

func (p *modulePool) status() poolStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := poolStatus{Version: p.info.CodeVersion, Schema: p.info.SchemaVersion, Restarts: p.restarts, LastExit: p.lastExit}
	if p.cur != nil {
		st.Pid = p.cur.Pid()
	}
	return st
}

// moduleVersion is the code version an actor runs: its committed state's
// or, before its first commit, its module's (see poolStatus); "" if
// neither is known yet.
func (a *actor) moduleVersion() string {
	a.mu.Lock()
	module, pool := a.state.Module, a.pool
	a.mu.Unlock()
	if module == "" && pool != nil {
		module = pool.status().Version
	}
	return module
}

func stopModule(m *dynamic.Instance, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = m.Stop(ctx)
}

// backoff is min·2^(n-1), capped at max.
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// BinaryDescriber may be implemented by a Config.Modules selector that
// runs binaries from a cache of copies (the upgrade package's Manager): it
// names the file the user built and the code version of the copy at path,
// so errors name those and show the cache file only as a detail.
type BinaryDescriber interface {
	// DescribeBinary returns the source file of the cached binary at path
	// and its code version ("" when unknown), or source "" if unknown.
	DescribeBinary(behaviour, path string) (source, version string)
}

// nameSource rewrites a module start error of behaviour to name the user's
// binary (and its version) instead of the cached copy that was run. The
// result still matches what err matched (errors.Is, errors.As).
func (c *Core) nameSource(behaviour string, err error) error {
	d, ok := c.cfg.Modules.(BinaryDescriber)
	var se *dynamic.StartError
	if err == nil || !ok || !errors.As(err, &se) || se.Source != "" {
		return err
	}
	source, version := d.DescribeBinary(behaviour, se.Path)
	if source == "" {
		return err
	}
	named := se.WithSource(source, version)
	msg, inner := err.Error(), se.Error()
	if strings.Contains(msg, inner) {
		msg = strings.Replace(msg, inner, named.Error(), 1)
	} else {
		msg = named.Error() + ": " + msg
	}
	return &sourcedError{msg: msg, named: named, err: err}
}

// sourcedError is an error whose text names the user's binary.
type sourcedError struct {
	msg   string
	named *dynamic.StartError
	err   error
}

func (e *sourcedError) Error() string   { return e.msg }
func (e *sourcedError) Unwrap() []error { return []error{e.named, e.err} }
