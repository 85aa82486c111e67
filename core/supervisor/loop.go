package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// startOp is one Start call in flight. It is registered (with everything
// needed to clean up after it) before the call begins, so a start whose
// result arrives late, or after the supervisor moved on, is still stopped.
type startOp struct {
	c           *child
	gen         uint64
	cancel      context.CancelFunc
	disarm      func() bool // stops the StartTimeout's report to the loop
	stopTimeout time.Duration
}

// stopItem is one child to stop within a stop batch.
type stopItem struct {
	id      string
	ch      Child
	timeout time.Duration
	done    chan struct{}   // closed by this batch once ch is stopped
	wait    <-chan struct{} // set instead of ch: an earlier batch is stopping it
	err     error
}

// loop runs every state change of the supervisor, one closure at a time. It
// never blocks on a child: the closures only start goroutines and timers.
func (s *Supervisor) loop() {
	for {
		f := <-s.events
		s.mu.Lock()
		f()
		if s.shutting && s.stoppers == 0 && (len(s.starts) == 0 || s.abandon) {
			s.exit = true
		}
		exit := s.exit
		if exit {
			s.phase = phaseExited
			for op := range s.starts {
				op.disarm()
			}
			if s.abandonT != nil {
				s.abandonT.Stop()
			}
		}
		evs := s.takeEvents()
		s.mu.Unlock()
		s.emit(evs)
		if exit {
			break
		}
	}
	// From here on, start goroutines that report late stop their own Child.
	close(s.loopDone)
	close(s.done)
}

// post hands f to the loop; false means the loop has exited.
func (s *Supervisor) post(f func()) bool {
	select {
	case s.events <- f:
		return true
	case <-s.loopDone:
		return false
	}
}

// event records an event for emission once mu is released.
func (s *Supervisor) event(kind EventKind, c *child, err error, delay time.Duration) {
	s.pending = append(s.pending, Event{
		Kind: kind, Child: c.spec.ID, Err: err, Delay: delay,
		Restarts: c.restarts, Time: time.Now(),
	})
}

// takeEvents returns and clears the pending events; the caller holds mu.
func (s *Supervisor) takeEvents() []Event {
	evs := s.pending
	s.pending = nil
	return evs
}

// emit logs the events and passes them to OnEvent, outside mu so that the
// hook may call Children.
func (s *Supervisor) emit(evs []Event) {
	for _, ev := range evs {
		level := slog.LevelDebug
		switch {
		case ev.Kind == EventGaveUp:
			level = slog.LevelError
		case ev.Err != nil:
			level = slog.LevelWarn
		case ev.Kind == EventStarted || ev.Kind == EventRestarting:
			level = slog.LevelInfo
		}
		if s.spec.Logger.Enabled(context.Background(), level) {
			s.log(level, ev)
		}
		if s.spec.OnEvent != nil {
			s.spec.OnEvent(ev)
		}
	}
}

// log writes one event to the supervisor's logger.
func (s *Supervisor) log(level slog.Level, ev Event) {
	attrs := []any{"child", ev.Child, "restarts", ev.Restarts}
	if ev.Err != nil {
		attrs = append(attrs, "err", ev.Err)
	}
	if ev.Kind == EventRestarting {
		attrs = append(attrs, "delay", ev.Delay)
	}
	s.spec.Logger.Log(context.Background(), level, "supervisor: child "+ev.Kind.String(), attrs...)
}

// setState moves a child to a state and stamps the time.
func (s *Supervisor) setState(c *child, st ChildState) {
	if c.state == Waiting && st != Waiting {
		s.waiting--
	} else if c.state != Waiting && st == Waiting {
		s.waiting++
		s.cursor = 0 // it may sit before the cursor
	}
	c.state = st
	c.since = time.Now()
}

// initResolved marks an initial child as having run (or as no longer
// expected to), releasing Start once all have.
func (s *Supervisor) initResolved(id string) {
	if !s.init[id] {
		return
	}
	delete(s.init, id)
	if len(s.init) == 0 {
		close(s.initDone)
	}
}

// schedule starts every waiting child whose requirements are running, in
// start order; children independent of each other thus start concurrently.
func (s *Supervisor) schedule() {
	if s.shutting || s.waiting == 0 {
		return // O(1) in the common case: thousands of children, none waiting
	}
	// The cursor skips the children before the first waiting one, so
	// starting n children through a bounded window costs O(n), not O(n²).
	for s.cursor < len(s.order) && s.order[s.cursor].state != Waiting {
		s.cursor++
	}
	left := s.waiting
	for _, c := range s.order[s.cursor:] {
		if left == 0 || len(s.starts) >= s.spec.MaxConcurrentStarts {
			break
		}
		if c.state != Waiting {
			continue
		}
		left--
		ready := true
		for _, r := range c.spec.Requires {
			if rc, ok := s.children[r]; !ok || rc.state != Running {
				ready = false
				break
			}
		}
		if ready {
			s.launchStart(c)
		}
	}
}

// launchStart runs the child's Start in its own goroutine, bounded by a
// StartTimeout timer owned by the loop (so a Start that ignores its ctx
// still counts as failed on time). The cleanup of a late result is armed
// first: the op is tracked, and a Child that comes back when nobody wants it
// is stopped, by the loop or, once the loop is gone, by the goroutine.
func (s *Supervisor) launchStart(c *child) {
	c.gen++
	ctx, cancel := context.WithTimeout(s.ctx, c.spec.StartTimeout)
	op := &startOp{c: c, gen: c.gen, cancel: cancel, stopTimeout: c.spec.StopTimeout}
	s.starts[op] = struct{}{}
	c.op = op
	c.stopDone = nil
	s.setState(c, Starting)
	s.event(EventStarting, c, nil, 0)
	// The deadline of Start's ctx is the loop's timer too (one timer per
	// start, not two: it counts when a million actors start).
	op.disarm = context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			s.post(func() { s.onStartTimeout(op) })
		}
	})
	start, timeout := c.spec.Start, c.spec.StartTimeout
	go func() {
		ch, err := callStart(ctx, start)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// A Start that honoured its deadline timed out all the same: it
			// reads as the loop's timer does, whichever of the two is first.
			err = fmt.Errorf("no result within %s: %w: %w", timeout, ErrStartTimeout, err)
		}
		if !s.post(func() { s.onStartDone(op, ch, err) }) {
			cancel()
			if ch != nil {
				_ = stopBounded(op.c.spec.ID, ch, op.stopTimeout, time.Time{})
			}
		}
	}()
}

// callStart calls a Start function, turning a panic into an error so that a
// faulty child cannot take the supervisor down.
func callStart(ctx context.Context, start func(context.Context) (Child, error)) (ch Child, err error) {
	defer func() {
		if r := recover(); r != nil {
			ch, err = nil, fmt.Errorf("%w: %v", ErrStartPanic, r)
		}
	}()
	return start(ctx)
}

// onStartDone takes a start's result. A result nobody waits for any more
// (timed out, terminated, shutting down) or that came with an error has its
// Child stopped at once.
func (s *Supervisor) onStartDone(op *startOp, ch Child, err error) {
	delete(s.starts, op)
	defer s.schedule() // a start slot is free, and c may be required by others
	op.disarm()
	op.cancel()
	c := op.c
	id := c.spec.ID
	if err == nil && ch == nil {
		err = fmt.Errorf("Start returned neither a Child nor an error")
	}
	current := !c.removed && c.op == op && c.gen == op.gen && c.state == Starting
	if ch != nil && (!current || err != nil) {
		s.runStops([]*stopItem{{id: id, ch: ch, timeout: op.stopTimeout, done: make(chan struct{})}}, time.Time{}, func() {})
	}
	if !current {
		return
	}
	c.op = nil
	if err != nil {
		s.startFailed(c, fmt.Errorf("supervisor: start child %q: %w", id, err))
		return
	}
	c.cur = ch
	c.ranAt = time.Now()
	s.setState(c, Running)
	s.event(EventStarted, c, nil, 0)
	for _, w := range c.waiters {
		w(nil)
	}
	c.waiters = nil
	s.initResolved(id)
	// Done existed before the child ran, so an exit that already happened
	// (even during Start) is seen here.
	gen := c.gen
	exited := func() { s.post(func() { s.onExit(c, gen) }) }
	if n, ok := ch.(Notifier); ok {
		n.OnDone(exited)
		return
	}
	go func() {
		select {
		case <-ch.Done():
			exited()
		case <-s.loopDone:
		}
	}()
}

// onStartTimeout fails a start that has not returned within StartTimeout.
// Its goroutine is still tracked; whatever it returns later is stopped.
func (s *Supervisor) onStartTimeout(op *startOp) {
	c := op.c
	if c.removed || c.op != op || c.gen != op.gen || c.state != Starting {
		return
	}
	op.cancel()
	c.op = nil
	c.gen++
	s.startFailed(c, fmt.Errorf("supervisor: start child %q: no result within %s: %w",
		c.spec.ID, c.spec.StartTimeout, ErrStartTimeout))
}

// startFailed reports a failed start to waiters and applies the restart
// rules, like a crash.
func (s *Supervisor) startFailed(c *child, err error) {
	c.lastErr = err
	s.event(EventStartFailed, c, err, 0)
	s.failWaiters(c, err)
	s.setState(c, Stopped)
	s.handleFailure(c, err)
}

// failWaiters answers the Add/Restart callers waiting for a start.
func (s *Supervisor) failWaiters(c *child, err error) {
	for _, w := range c.waiters {
		w(err)
	}
	c.waiters = nil
}

// onExit handles the exit of a running child seen by its watcher.
func (s *Supervisor) onExit(c *child, gen uint64) {
	if c.removed || c.gen != gen || c.state != Running {
		return
	}
	err := c.cur.Err()
	c.cur = nil
	now := time.Now()
	if now.Sub(c.ranAt) >= s.spec.Period {
		c.backoff = 0 // it ran stably: start the backoff over
	}
	if err != nil {
		c.lastErr = err
	}
	s.event(EventExited, c, err, 0)
	s.setState(c, Stopped)
	s.handleFailure(c, err)
}

// handleFailure applies the restart type, the intensity limit, the backoff
// and the strategy to a child that exited or failed to start (err nil means
// a normal exit). The child is not running when this is called.
func (s *Supervisor) handleFailure(c *child, err error) {
	restart := c.spec.Restart == Permanent || (c.spec.Restart == Transient && err != nil)
	if !restart {
		if c.spec.Restart == Temporary {
			s.remove(c, err)
			return
		}
		s.setState(c, Stopped)
		s.initResolved(c.spec.ID)
		return
	}
	if !s.allowRestart(time.Now()) {
		s.giveUp(c, err)
		return
	}
	delay := s.nextBackoff(c)
	c.restarts++
	s.event(EventRestarting, c, err, delay)
	group := s.restartSet(c)
	if len(group) == 1 {
		s.scheduleRestart(c, delay)
		return
	}
	rev := slices.Clone(group)
	slices.Reverse(rev)
	s.stopGroup(rev, c, time.Time{}, func(m *child, _ error) {
		if m != c && m.spec.Restart == Temporary {
			s.remove(m, nil)
			return
		}
		s.scheduleRestart(m, delay)
	})
}

// allowRestart records a restart and says whether the intensity allows it.
func (s *Supervisor) allowRestart(now time.Time) bool {
	cut := now.Add(-s.spec.Period)
	s.restarts = slices.DeleteFunc(s.restarts, func(t time.Time) bool { return !t.After(cut) })
	s.restarts = append(s.restarts, now)
	return len(s.restarts) <= s.spec.MaxRestarts
}

// nextBackoff doubles the child's restart delay within [BackoffMin,
// BackoffMax].
func (s *Supervisor) nextBackoff(c *child) time.Duration {
	d := s.spec.BackoffMin
	if c.backoff > 0 {
		d = min(2*c.backoff, s.spec.BackoffMax)
	}
	c.backoff = d
	return d
}

// restartSet is the children restarted with c by the strategy, in start
// order. Terminated and stopped siblings are left alone.
func (s *Supervisor) restartSet(c *child) []*child {
	if s.spec.Strategy == OneForOne {
		return []*child{c}
	}
	var out []*child
	after := false
	for _, m := range s.order {
		if m == c {
			after = true
			out = append(out, m)
			continue
		}
		if s.spec.Strategy == RestForOne && !after {
			continue
		}
		if m.terminated || m.state == Stopped || m.state == Failed {
			continue
		}
		out = append(out, m)
	}
	return out
}

// scheduleRestart puts a child in Backoff and arms its restart timer; the
// loop itself never sleeps.
func (s *Supervisor) scheduleRestart(c *child, delay time.Duration) {
	s.setState(c, Backoff)
	c.delay = delay
	gen := c.gen
	c.timer = time.AfterFunc(delay, func() {
		s.post(func() {
			if c.removed || c.gen != gen || c.state != Backoff {
				return
			}
			c.timer = nil
			s.setState(c, Waiting)
			s.schedule()
		})
	})
}

// giveUp makes the supervisor fail: intensity was exceeded because of c.
func (s *Supervisor) giveUp(c *child, err error) {
	if err != nil {
		s.exitErr = fmt.Errorf("supervisor: child %q: %w (more than %d restarts within %s): %w",
			c.spec.ID, ErrIntensity, s.spec.MaxRestarts, s.spec.Period, err)
	} else {
		s.exitErr = fmt.Errorf("supervisor: child %q: %w (more than %d restarts within %s; last exit was normal)",
			c.spec.ID, ErrIntensity, s.spec.MaxRestarts, s.spec.Period)
	}
	s.setState(c, Failed)
	s.event(EventGaveUp, c, s.exitErr, 0)
	s.beginShutdown(time.Time{})
}

// beginShutdown stops everything: starts are cancelled, restart timers
// dropped, running children stopped in reverse start order (each within its
// StopTimeout, and within deadline if set). The loop exits once the stops
// are done and the start goroutines have reported, or after a bounded grace
// for starts that ignore their ctx (those then stop their own late Child).
func (s *Supervisor) beginShutdown(deadline time.Time) {
	if s.shutting {
		return
	}
	s.shutting = true
	s.cancel()
	var members []*child
	for i := len(s.order) - 1; i >= 0; i-- {
		c := s.order[i]
		s.failWaiters(c, fmt.Errorf("supervisor: child %q: %w", c.spec.ID, ErrStopped))
		if c.state != Stopped && c.state != Failed {
			members = append(members, c)
		}
	}
	s.stopGroup(members, nil, deadline, func(m *child, _ error) { s.setState(m, Stopped) })
	if len(s.starts) > 0 {
		var grace time.Duration
		for op := range s.starts {
			grace = max(grace, op.stopTimeout)
		}
		if !deadline.IsZero() {
			grace = max(0, min(grace, time.Until(deadline)))
		}
		s.abandonT = time.AfterFunc(grace, func() { s.post(func() { s.abandon = true }) })
	}
}

// stopGroup stops members in the given order, one after the other, then
// calls each for every member still owned by this stop (not taken over
// since by another stop, a removal or a shutdown), in reverse order. Every
// member but quiet (a child that already exited) gets an EventStopped.
func (s *Supervisor) stopGroup(members []*child, quiet *child, deadline time.Time, each func(m *child, err error)) {
	items := make([]*stopItem, len(members))
	gens := make([]uint64, len(members))
	for i, m := range members {
		items[i] = s.takeDown(m)
		gens[i] = m.gen
	}
	s.runStops(items, deadline, func() {
		for i := len(members) - 1; i >= 0; i-- {
			m := members[i]
			if m.removed || m.gen != gens[i] {
				continue
			}
			var err error
			if it := items[i]; it != nil && it.ch != nil {
				err = it.err
				if err != nil {
					m.lastErr = err
				}
			}
			if m != quiet {
				s.event(EventStopped, m, err, 0)
			}
			each(m, err)
		}
	})
}

// takeDown abandons whatever the child is doing (start, run, restart delay)
// and returns the stop to perform, if any. The generation bump makes every
// late report about the old activity stale.
func (s *Supervisor) takeDown(c *child) *stopItem {
	c.gen++
	var it *stopItem
	switch c.state {
	case Running:
		it = &stopItem{id: c.spec.ID, ch: c.cur, timeout: c.spec.StopTimeout, done: make(chan struct{})}
		c.stopDone = it.done
		c.cur = nil
	case Stopping:
		if c.stopDone != nil {
			it = &stopItem{wait: c.stopDone}
		}
	case Starting:
		if c.op != nil {
			c.op.cancel()
			c.op = nil
		}
	case Backoff:
		if c.timer != nil {
			c.timer.Stop()
			c.timer = nil
		}
	}
	s.setState(c, Stopping)
	return it
}

// runStops performs a batch of stops in order in one goroutine and then
// runs then in the loop. The loop does not exit while a batch is out, and
// every stop is bounded, so the batch always reports back.
func (s *Supervisor) runStops(items []*stopItem, deadline time.Time, then func()) {
	s.stoppers++
	go func() {
		for _, it := range items {
			switch {
			case it == nil:
			case it.wait != nil:
				<-it.wait
			default:
				it.err = stopBounded(it.id, it.ch, it.timeout, deadline)
				close(it.done)
			}
		}
		s.post(func() {
			s.stoppers--
			then()
		})
	}()
}

// stopBounded stops ch and waits for it to exit, for at most timeout (cut
// to deadline if that comes first). A child whose Stop ignores its ctx is
// abandoned at the deadline: its Stop call is left running, the caller is not.
func stopBounded(id string, ch Child, timeout time.Duration, deadline time.Time) error {
	if !deadline.IsZero() {
		timeout = max(0, min(timeout, time.Until(deadline)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ch.Stop(ctx) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("supervisor: stop child %q: %w", id, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("supervisor: stop child %q: Stop did not return within %s: %w", id, timeout, ErrStopTimeout)
	}
	select {
	case <-ch.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("supervisor: stop child %q: not exited within %s: %w", id, timeout, ErrStopTimeout)
	}
}

// remove drops a child from the supervisor (temporary exit, Delete).
func (s *Supervisor) remove(c *child, err error) {
	c.gen++
	c.removed = true
	if c.state == Waiting {
		s.waiting--
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	delete(s.children, c.spec.ID)
	s.order = slices.DeleteFunc(s.order, func(o *child) bool { return o == c })
	s.cursor = 0
	if err == nil {
		err = fmt.Errorf("supervisor: child %q removed", c.spec.ID)
	}
	s.failWaiters(c, err)
	s.initResolved(c.spec.ID)
	s.event(EventRemoved, c, nil, 0)
}
