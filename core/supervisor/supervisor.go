package supervisor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// A *Supervisor is a Child, so a supervisor can supervise another.
var _ Child = (*Supervisor)(nil)

// phase of the supervisor as a whole.
type phase int

const (
	phaseNew phase = iota
	phaseRunning
	phaseExited
)

// Supervisor starts, watches and restarts its children. One loop goroutine
// owns the children's state and never blocks: starts, stops and restart
// delays run in goroutines and timers that report back to it, so every
// method answers promptly even while a child start or stop hangs.
//
// A *Supervisor is itself a Child, so supervisors nest into trees: a
// supervisor that exceeds its restart intensity stops its children and exits
// with an error matching ErrIntensity, which its parent sees as a crash.
type Supervisor struct {
	spec Spec

	// events carries closures for the loop to run: results from start,
	// watch, stop and timer goroutines, and requests from the methods.
	events chan func()
	// loopDone is closed when the loop has returned; goroutines that would
	// report to it clean up by themselves from then on.
	loopDone chan struct{}
	// done is closed once the supervisor has exited and cleaned up.
	done chan struct{}
	// initDone is closed once every initial child has run (or was removed).
	initDone chan struct{}

	// mu guards everything below. The loop holds it while it handles an
	// event (never blocking), so Children can read a consistent snapshot.
	mu       sync.Mutex
	phase    phase
	children map[string]*child
	order    []*child // start order: requirements before dependents
	exitErr  error
	ctx      context.Context // cancelled at shutdown; parent of start contexts
	cancel   context.CancelFunc
	starts   map[*startOp]struct{} // start goroutines not yet reported back
	stoppers int                   // stop batches not yet reported back
	restarts []time.Time           // restart times within the last Period
	pending  []Event               // events to emit once mu is released
	init     map[string]bool       // initial children not yet run once
	waiting  int                   // children in state Waiting, so schedule can skip its scan
	cursor   int                   // no child before order[cursor] is Waiting
	shutting bool
	abandon  bool        // shutdown stopped waiting for hung starts
	abandonT *time.Timer // fires abandon
	exit     bool        // the loop should return after this event
}

// child is the loop's record of one child.
type child struct {
	spec     ChildSpec
	state    ChildState
	since    time.Time
	gen      uint64 // bumped whenever the current start/run/timer is abandoned
	cur      Child  // when Running
	op       *startOp
	timer    *time.Timer // restart delay or nothing
	delay    time.Duration
	backoff  time.Duration // last restart delay, 0 after a reset
	ranAt    time.Time     // when it last became Running
	stopDone chan struct{} // closed when its in-flight stop finishes
	restarts int
	lastErr  error
	// terminated: stopped by the operator; never restarted by a strategy.
	terminated bool
	removed    bool
	waiters    []func(error) // Add/Restart callers waiting for the start
}

// New validates the spec and the children (ids, requirements, cycles) and
// returns a supervisor that is not started yet. Nothing is started when
// validation fails, so a bad tree is refused as a whole.
func New(spec Spec, children ...ChildSpec) (*Supervisor, error) {
	sp, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	specs := make([]ChildSpec, 0, len(children))
	for _, cs := range children {
		n, err := cs.normalize()
		if err != nil {
			return nil, err
		}
		specs = append(specs, n)
	}
	ordered, err := orderSpecs(specs)
	if err != nil {
		return nil, err
	}
	s := &Supervisor{
		spec:     sp,
		events:   make(chan func()),
		loopDone: make(chan struct{}),
		done:     make(chan struct{}),
		initDone: make(chan struct{}),
		children: make(map[string]*child, len(ordered)),
		starts:   make(map[*startOp]struct{}),
		init:     make(map[string]bool, len(ordered)),
	}
	now := time.Now()
	for _, cs := range ordered {
		c := &child{spec: cs, state: Waiting, since: now}
		s.waiting++
		s.children[cs.ID] = c
		s.order = append(s.order, c)
		s.init[cs.ID] = true
	}
	return s, nil
}

// Start starts the supervisor's loop and its children, and waits until every
// initial child has run at least once, so a caller (or a parent supervisor)
// knows the tree is up. ctx bounds only that wait: when it ends first, Start
// returns its error and the supervisor keeps running (call Stop). If the
// supervisor gives up while starting, Start returns its error.
func (s *Supervisor) Start(ctx context.Context) error {
	s.mu.Lock()
	switch s.phase {
	case phaseRunning:
		s.mu.Unlock()
		return fmt.Errorf("supervisor: start: already started")
	case phaseExited:
		s.mu.Unlock()
		return fmt.Errorf("supervisor: start: %w", ErrStopped)
	}
	s.phase = phaseRunning
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if len(s.init) == 0 {
		close(s.initDone)
	}
	s.schedule()
	evs := s.takeEvents()
	s.mu.Unlock()
	go s.loop()
	s.emit(evs)

	select {
	case <-s.initDone:
		return nil
	case <-s.done:
		if err := s.Err(); err != nil {
			return fmt.Errorf("supervisor: start: %w", err)
		}
		return fmt.Errorf("supervisor: start: %w", ErrStopped)
	case <-ctx.Done():
		select {
		case <-s.initDone:
			return nil // both were ready: the tree is up
		default:
		}
		s.mu.Lock()
		var ids []string
		for _, c := range s.order {
			if s.init[c.spec.ID] {
				ids = append(ids, c.spec.ID)
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("supervisor: start: children %v not running yet: %w", ids, ctx.Err())
	}
}

// Run starts the supervisor and blocks until it exits; cancelling ctx stops
// it gracefully (each child within its StopTimeout). It returns the
// supervisor's exit error: nil after a requested stop.
func (s *Supervisor) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		_ = s.Stop(context.WithoutCancel(ctx)) // bounded by the children's StopTimeouts
		return err
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		_ = s.Stop(context.WithoutCancel(ctx))
	}
	return s.Err()
}

// Done is closed once the supervisor has exited and stopped its children. It
// exists from New on, as the Child contract requires.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Err is why the supervisor exited: nil after Stop, an error matching
// ErrIntensity after it gave up. It is nil while the supervisor runs.
func (s *Supervisor) Err() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitErr
}

// Stop stops every child in reverse start order, each within its
// StopTimeout (and within ctx's deadline), cancels starts in flight, and
// waits for the supervisor to exit. It returns by ctx's deadline even if a
// child misbehaves; the shutdown then goes on, bounded, in the background.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.phase == phaseNew {
		s.phase = phaseExited
		close(s.loopDone)
		close(s.done)
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	deadline, _ := ctx.Deadline()
	select {
	case s.events <- func() { s.beginShutdown(deadline) }:
	case <-s.loopDone:
	case <-ctx.Done():
		return fmt.Errorf("supervisor: stop: %w", ctx.Err())
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("supervisor: stop: children still stopping: %w", ctx.Err())
	}
}

// Children returns a snapshot of every child in start order. It never waits
// for the loop's work (starts and stops run outside it), so it answers at
// once even while a start hangs, and still answers after the supervisor
// exited.
func (s *Supervisor) Children() []ChildStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChildStatus, 0, len(s.order))
	for _, c := range s.order {
		out = append(out, c.status())
	}
	return out
}

// status snapshots one child; the caller holds mu.
func (c *child) status() ChildStatus {
	st := ChildStatus{
		ID:        c.spec.ID,
		State:     c.state,
		Restart:   c.spec.Restart,
		Requires:  slices.Clone(c.spec.Requires),
		Restarts:  c.restarts,
		LastError: c.lastErr,
		Since:     c.since,
	}
	if c.state == Backoff {
		st.Delay = c.delay
	}
	return st
}

// call runs f in the loop and waits for the answer it gives through reply,
// bounded by ctx. f may answer later (after a start or stop completes).
func (s *Supervisor) call(ctx context.Context, what string, f func(reply func(error))) error {
	s.mu.Lock()
	ph := s.phase
	s.mu.Unlock()
	switch ph {
	case phaseNew:
		return fmt.Errorf("supervisor: %s: %w", what, ErrNotStarted)
	case phaseExited:
		return fmt.Errorf("supervisor: %s: %w", what, ErrStopped)
	}
	replyc := make(chan error, 1)
	reply := func(err error) {
		select {
		case replyc <- err:
		default:
		}
	}
	fn := func() {
		if s.shutting {
			reply(fmt.Errorf("supervisor: %s: %w", what, ErrStopped))
			return
		}
		f(reply)
	}
	select {
	case s.events <- fn:
	case <-s.loopDone:
		return fmt.Errorf("supervisor: %s: %w", what, ErrStopped)
	case <-ctx.Done():
		return fmt.Errorf("supervisor: %s: %w", what, ctx.Err())
	}
	select {
	case err := <-replyc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("supervisor: %s: %w", what, ctx.Err())
	case <-s.loopDone:
		select {
		case err := <-replyc:
			return err
		default:
			return fmt.Errorf("supervisor: %s: %w", what, ErrStopped)
		}
	}
}

// Add adds a child to a running supervisor (after the existing ones in start
// order) and waits, bounded by ctx, for its first start: nil once it runs,
// or the start's error. Either way the child stays supervised (unless it is
// Temporary) and is retried under the usual rules; when ctx ends first the
// child is still being started.
func (s *Supervisor) Add(ctx context.Context, cs ChildSpec) error {
	return s.add(ctx, cs, true)
}

// Enroll is Add without the wait: it returns once the child is supervised,
// its first start under way. An error says the child was not added (a
// duplicate, an unknown requirement, a supervisor that stopped); how the
// start went shows in the events and in Children. It is for callers that
// add many children and need not see each start, such as a core creating
// an actor for each first message.
func (s *Supervisor) Enroll(ctx context.Context, cs ChildSpec) error {
	return s.add(ctx, cs, false)
}

// add is Add, waiting for the first start only if wait.
func (s *Supervisor) add(ctx context.Context, cs ChildSpec, wait bool) error {
	n, err := cs.normalize()
	if err != nil {
		return err
	}
	return s.call(ctx, "add "+n.ID, func(reply func(error)) {
		if _, dup := s.children[n.ID]; dup {
			reply(fmt.Errorf("supervisor: add: child %q: %w", n.ID, ErrDuplicateChild))
			return
		}
		for _, r := range n.Requires {
			rc, ok := s.children[r]
			if !ok {
				reply(fmt.Errorf("supervisor: add: child %q requires %q: %w", n.ID, r, ErrUnknownChild))
				return
			}
			if rc.spec.Restart == Temporary {
				reply(fmt.Errorf("supervisor: add: child %q requires temporary child %q: %w", n.ID, r, ErrInvalidSpec))
				return
			}
		}
		// Every requirement already exists, so appending keeps the order
		// topological and cannot close a cycle.
		c := &child{spec: n, state: Waiting, since: time.Now()}
		s.waiting++
		if wait {
			c.waiters = append(c.waiters, reply)
		} else {
			reply(nil)
		}
		s.children[n.ID] = c
		s.order = append(s.order, c)
		s.schedule()
	})
}

// Terminate stops a child (bounded by its StopTimeout) and keeps its spec;
// it is not restarted, by any strategy, until Restart. A start in flight is
// cancelled. Terminating a stopped child is a no-op.
func (s *Supervisor) Terminate(ctx context.Context, id string) error {
	return s.call(ctx, "terminate "+id, func(reply func(error)) {
		c, ok := s.children[id]
		if !ok {
			reply(fmt.Errorf("supervisor: terminate: child %q: %w", id, ErrUnknownChild))
			return
		}
		c.terminated = true
		s.initResolved(id)
		if c.state == Stopped || c.state == Failed {
			reply(nil)
			return
		}
		s.failWaiters(c, fmt.Errorf("supervisor: child %q terminated", id))
		s.stopGroup([]*child{c}, nil, time.Time{}, func(m *child, err error) {
			s.setState(m, Stopped)
			reply(err)
		})
	})
}

// Restart starts a stopped (terminated, failed or normally exited) child
// again and waits, bounded by ctx, for the start as Add does. A child that
// is not stopped is refused with ErrRunning, as in OTP.
func (s *Supervisor) Restart(ctx context.Context, id string) error {
	return s.call(ctx, "restart "+id, func(reply func(error)) {
		c, ok := s.children[id]
		if !ok {
			reply(fmt.Errorf("supervisor: restart: child %q: %w", id, ErrUnknownChild))
			return
		}
		if c.state != Stopped && c.state != Failed {
			reply(fmt.Errorf("supervisor: restart: child %q is %s: %w", id, c.state, ErrRunning))
			return
		}
		c.terminated = false
		c.backoff = 0
		c.waiters = append(c.waiters, reply)
		s.setState(c, Waiting)
		s.schedule()
	})
}

// Delete removes a stopped child's spec. A child that is not stopped is
// refused with ErrRunning (Terminate it first, as in OTP), and so is a child
// that siblings require, with ErrRequired naming them.
func (s *Supervisor) Delete(ctx context.Context, id string) error {
	return s.call(ctx, "delete "+id, func(reply func(error)) {
		c, ok := s.children[id]
		if !ok {
			reply(fmt.Errorf("supervisor: delete: child %q: %w", id, ErrUnknownChild))
			return
		}
		if c.state != Stopped && c.state != Failed {
			reply(fmt.Errorf("supervisor: delete: child %q is %s: %w", id, c.state, ErrRunning))
			return
		}
		var deps []string
		for _, o := range s.order {
			if slices.Contains(o.spec.Requires, id) {
				deps = append(deps, o.spec.ID)
			}
		}
		if len(deps) > 0 {
			reply(fmt.Errorf("supervisor: delete: child %q is required by %v: %w", id, deps, ErrRequired))
			return
		}
		s.remove(c, nil)
		reply(nil)
	})
}
