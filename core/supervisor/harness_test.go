package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitLimit bounds every wait on a condition; generous for a loaded machine.
const waitLimit = 15 * time.Second

var errCrash = errors.New("test crash")

// tchild is a real goroutine-based child driven by the test: it runs until
// it is told to crash (or exit normally) or is stopped.
type tchild struct {
	h       *harness
	id      string
	n       int // instance number for its id, from 0
	done    chan struct{}
	cmd     chan error
	stopReq chan struct{}
	once    sync.Once
	ignore  <-chan struct{} // if set, Stop ignores ctx and blocks until closed
	mu      sync.Mutex
	err     error
}

// nchild is a tchild that reports its exit itself (a Notifier).
type nchild struct {
	*tchild
	mu     sync.Mutex
	exited bool
	onDone []func()
}

func (c *nchild) OnDone(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited {
		go f()
		return
	}
	c.onDone = append(c.onDone, f)
}

// notifyExit runs once the tchild's done is closed.
func (c *nchild) notifyExit() {
	<-c.done
	c.mu.Lock()
	c.exited = true
	fs := c.onDone
	c.mu.Unlock()
	for _, f := range fs {
		go f()
	}
}

func (c *tchild) run() {
	defer close(c.done)
	select {
	case err := <-c.cmd:
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.h.record("exit %s#%d", c.id, c.n)
	case <-c.stopReq:
		c.h.record("stopped %s#%d", c.id, c.n)
	}
}

func (c *tchild) Done() <-chan struct{} { return c.done }

func (c *tchild) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *tchild) Stop(ctx context.Context) error {
	c.h.record("stop %s#%d", c.id, c.n)
	if c.ignore != nil {
		<-c.ignore
	}
	c.once.Do(func() { close(c.stopReq) })
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// crash makes the child exit with err (nil: a normal exit).
func (c *tchild) crash(err error) {
	select {
	case c.cmd <- err:
	case <-c.done:
	}
	<-c.done
}

// opts shapes the children a harness starts.
type opts struct {
	// pre runs first in Start with the attempt number; an error fails the
	// start. It may block (to hang a start).
	pre func(ctx context.Context, attempt int) error
	// exitInStart: the child exits with errCrash before Start returns.
	exitInStart bool
	// exitAfterStart: the child exits with errCrash right after Start returns.
	exitAfterStart bool
	// ignoreStop: Stop ignores ctx until this is closed.
	ignoreStop <-chan struct{}
	// notify: the child is a Notifier, which reports its own exit.
	notify bool
}

// harness records what the children and the supervisor do, in one log, and
// lets tests wait on conditions over it without sleeping.
type harness struct {
	t        *testing.T
	mu       sync.Mutex
	log      []string
	events   []Event
	inst     map[string][]*tchild
	attempts map[string]int
	changed  chan struct{}
}

func newHarness(t *testing.T) *harness {
	return &harness{
		t: t, inst: map[string][]*tchild{}, attempts: map[string]int{},
		changed: make(chan struct{}),
	}
}

func (h *harness) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *harness) record(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, fmt.Sprintf(format, args...))
	h.notifyLocked()
}

func (h *harness) onEvent(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
	h.notifyLocked()
}

// spec returns a ChildSpec whose Start makes a tchild.
func (h *harness) spec(id string, o opts, requires ...string) ChildSpec {
	return ChildSpec{ID: id, Requires: requires, StartTimeout: 5 * time.Second, StopTimeout: 5 * time.Second,
		Start: func(ctx context.Context) (Child, error) {
			h.mu.Lock()
			attempt := h.attempts[id]
			h.attempts[id]++
			h.mu.Unlock()
			h.record("start %s", id)
			if o.pre != nil {
				if err := o.pre(ctx, attempt); err != nil {
					h.record("startfail %s", id)
					return nil, err
				}
			}
			h.mu.Lock()
			c := &tchild{h: h, id: id, n: len(h.inst[id]), done: make(chan struct{}),
				cmd: make(chan error), stopReq: make(chan struct{}), ignore: o.ignoreStop}
			h.inst[id] = append(h.inst[id], c)
			h.mu.Unlock()
			go c.run()
			var ch Child = c
			if o.notify {
				n := &nchild{tchild: c}
				go n.notifyExit()
				ch = n
			}
			if o.exitInStart {
				c.crash(errCrash)
			}
			h.record("up %s#%d", id, c.n)
			if o.exitAfterStart {
				go c.crash(errCrash)
			}
			return ch, nil
		}}
}

// await blocks until cond holds, failing the test after waitLimit.
func (h *harness) await(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ch := h.changed
		h.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			h.t.Fatalf("timed out waiting for %s\nlog: %v\n%s", what, h.logCopy(), buf)
		}
	}
}

// awaitDone waits for the supervisor to exit (Done is not a harness event,
// so it is waited on directly).
func (h *harness) awaitDone(s *Supervisor) {
	h.t.Helper()
	select {
	case <-s.Done():
	case <-time.After(waitLimit):
		h.t.Fatalf("supervisor did not exit\nlog: %v", h.logCopy())
	}
}

func (h *harness) logCopy() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

func (h *harness) eventsCopy() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// count counts log lines equal to line.
func (h *harness) count(line string) int {
	n := 0
	for _, l := range h.logCopy() {
		if l == line {
			n++
		}
	}
	return n
}

// index is the position of the n-th (from 0) occurrence of line, or -1.
func (h *harness) index(line string, n int) int {
	for i, l := range h.logCopy() {
		if l == line {
			if n == 0 {
				return i
			}
			n--
		}
	}
	return -1
}

// instance returns the n-th instance of a child id.
func (h *harness) instance(id string, n int) *tchild {
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Greater(h.t, len(h.inst[id]), n, "instance %s#%d", id, n)
	return h.inst[id][n]
}

func (h *harness) instances(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.inst[id])
}

// awaitAllDone waits for every child instance ever started to exit.
func (h *harness) awaitAllDone() {
	h.t.Helper()
	h.mu.Lock()
	var all []*tchild
	for _, list := range h.inst {
		all = append(all, list...)
	}
	h.mu.Unlock()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for _, c := range all {
		select {
		case <-c.done:
		case <-deadline.C:
			h.t.Fatalf("child %s#%d did not exit\nlog: %v", c.id, c.n, h.logCopy())
		}
	}
}

// allInstancesDone says whether every child instance ever started has exited.
func (h *harness) allInstancesDone() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, list := range h.inst {
		for _, c := range list {
			select {
			case <-c.done:
			default:
				return false
			}
		}
	}
	return true
}

// status returns a child's status and whether it exists.
func status(s *Supervisor, id string) (ChildStatus, bool) {
	for _, st := range s.Children() {
		if st.ID == id {
			return st, true
		}
	}
	return ChildStatus{}, false
}

// awaitState waits until child id is in state st and has at least n instances.
func (h *harness) awaitState(s *Supervisor, id string, st ChildState, n int) {
	h.t.Helper()
	h.await(fmt.Sprintf("%s %s with %d instances", id, st, n), func() bool {
		cs, ok := status(s, id)
		return ok && cs.State == st && h.instances(id) >= n
	})
}

// build makes a supervisor wired to the harness, not started yet, and stops
// it (bounded) when the test ends, so that a failing test leaves no
// goroutine behind (in a synctest bubble, one would bury the failure under
// a deadlock panic).
func (h *harness) build(spec Spec, children ...ChildSpec) *Supervisor {
	h.t.Helper()
	spec.OnEvent = h.onEvent
	s, err := New(spec, children...)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { h.stop(s) })
	return s
}

// newSup builds and starts a supervisor wired to the harness and stops it
// (bounded) when the test ends.
func (h *harness) newSup(spec Spec, children ...ChildSpec) *Supervisor {
	h.t.Helper()
	s := h.build(spec, children...)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(h.t, s.Start(ctx))
	return s
}

func (h *harness) stop(s *Supervisor) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(h.t, s.Stop(ctx))
}

// checkGoroutines fails the test if the goroutine count does not come back
// to base (or below) before a settle deadline.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want <= %d\n%s", n, base, buf)
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // settle poll, bounded by deadline
	}
}

// hasEvent reports whether an event of kind for child exists whose error
// matches target (nil target: any).
func (h *harness) hasEvent(kind EventKind, id string, target error) bool {
	for _, ev := range h.eventsCopy() {
		if ev.Kind == kind && ev.Child == id && (target == nil || errors.Is(ev.Err, target)) {
			return true
		}
	}
	return false
}

// awaitEvent waits for an event (events are emitted just after the state
// change they report, so a test that saw the state waits for the event).
func (h *harness) awaitEvent(kind EventKind, id string, target error) {
	h.t.Helper()
	h.await(fmt.Sprintf("event %s for %s", kind, id), func() bool { return h.hasEvent(kind, id, target) })
}
