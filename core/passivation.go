package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/graft-host/graft/core/supervisor"
)

// Passivation keeps an actor in memory only while it works (behaviours
// with BehaviourConfig.PassivateAfter). A passive actor is supervised (it
// is in c.specs) but is no child of its supervisor: it costs its name in
// c.asleep and the store's counters, not its state, an actor struct, a
// supervisor record or a goroutine. Its state stays committed in the
// store, and it is read again when the actor wakes.
//
//	                 message (notify), timer, Pause, repair, StopActor
//	  ┌─ passive ─────────────────────────────────────────▶ waking ─────┐
//	  │ name in c.asleep                      name lock; out of c.asleep;│
//	  │                                       addChild: Claim (a new     │
//	  │                                       epoch), read the state,    │
//	  │                                       module, first batch        │
//	  │                                                                  ▼
//	  └─ passivating ◀──── idle for PassivateAfter (sweeper) ──── active
//	     name lock; into c.asleep first, then Terminate and Delete the
//	     child (a batch in flight commits first); if a message came in
//	     meanwhile (depth > 0), wake again at once
//
// No message waits on a passive actor: a message is durable before the
// store notifies, and the notification either kicks the active actor,
// wakes the passive one, or finds it passivating. In that last case the
// message is in the depth that passivation reads after its child is gone,
// and passivation wakes it. Both transitions hold the name's lock, so they
// are serialized with each other and with spawn, adoption and destroy
// (membership.go).
//
// At Start (and each time the root rebuilds a behaviour's supervisor) an
// idle actor of a passivating behaviour starts passive: nothing is read
// or started for it, so a core with a million registered actors starts
// in the time it takes to list them. The upgrade hooks and the repairs
// wake a passive actor before they pause it, so that an upgrade migrates
// every actor's state, passive or not.

// StatusPassive is the ActorStatus.Status of a passive actor: supervised,
// not in memory, woken by its next message.
const StatusPassive = "passive"

// sweeper is the goroutine that passivates idle actors.
type sweeper struct {
	stop chan struct{}
	done sync.WaitGroup
}

// passivates says whether spec's actor may be passive: its behaviour
// passivates, and no requirement ties it to another actor (a required
// actor must be running for its dependents to start; a dependent waits
// for what it requires at its start, which a wake would repeat).
func (c *Core) passivates(spec ActorConfig) bool {
	return c.cfg.Behaviours[spec.Behaviour].PassivateAfter > 0 && len(spec.Requires) == 0 && !c.required[spec.Name]
}

// sleepIdle puts the idle actors of behaviour that may be passive to
// sleep before its supervisor lists its children: those with nothing
// queued (busy lists the others, from the store's Backlog), not in
// memory. Callers hold c.mu.
func (c *Core) sleepIdle(behaviour string, busy map[string]bool) {
	passivates := c.cfg.Behaviours[behaviour].PassivateAfter > 0
	if !passivates && c.cfg.Placement == nil {
		return
	}
	fresh := len(c.asleep) == 0
	if fresh {
		c.asleep = make(map[string]bool, len(c.specs)) // most of them, in a large registry
	}
	// Each lookup skipped when its map is empty: at the start of a core
	// with a million actors this loop is one of the costs that remain.
	for name, spec := range c.specs {
		if spec.Behaviour != behaviour || (len(c.actors) > 0 && c.actors[name] != nil) {
			continue
		}
		// Another core's actor sleeps here whatever its behaviour.
		elsewhere := c.cfg.Placement != nil && !c.cfg.Placement.Owns(name)
		if !elsewhere && (!passivates || len(spec.Requires) > 0 ||
			(len(c.required) > 0 && c.required[name]) || (len(busy) > 0 && busy[name])) {
			continue
		}
		if fresh {
			c.asleep[name] = false
		} else if _, asleep := c.asleep[name]; !asleep {
			c.asleep[name] = false
		}
	}
}

// backlog is the set of actors with messages queued, for sleepIdle; nil
// when behaviour does not passivate. A store that cannot list it leaves
// every actor awake.
func (c *Core) backlog(ctx context.Context, behaviour string) (map[string]bool, bool) {
	if c.cfg.Behaviours[behaviour].PassivateAfter <= 0 {
		return nil, false
	}
	names, err := c.store.Backlog(ctx)
	if err != nil {
		c.log.Warn("the store could not list the actors with queued messages; the idle actors stay in memory", "behaviour", behaviour, "err", err)
		return nil, false
	}
	busy := make(map[string]bool, len(names))
	for _, n := range names {
		busy[n] = true
	}
	return busy, true
}

// wakeQueued wakes the passive actors that have messages queued. A
// message whose notification came before its actor was put to sleep at
// start (sleepIdle) found it neither running nor passive, and woke
// nothing; this finds it, since the actor is asleep before the store is
// asked again.
func (c *Core) wakeQueued(ctx context.Context) {
	names, err := c.store.Backlog(ctx)
	if err != nil {
		c.log.Warn("the store could not list the actors with queued messages; a passive actor may wait for its next message", "err", err)
		return
	}
	for _, n := range names {
		c.wakeLater(n)
	}
}

// wakeLater wakes a passive actor in the background (notify's: it runs on
// a writer's goroutine and never waits). A wake that fails (its name's
// lock was held too long) is tried again with backoff until it succeeds,
// the actor is no longer passive or the core shuts down, so that no
// queued message waits for a next one.
func (c *Core) wakeLater(name string) {
	c.mu.Lock()
	queued, asleep := c.asleep[name]
	if !asleep || queued || c.closed || !c.owns(name) {
		c.mu.Unlock()
		return
	}
	c.asleep[name] = true
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
			ctx, cancel := context.WithTimeout(context.Background(), lockWait)
			err := c.wake(ctx, name)
			cancel()
			if err == nil {
				return
			}
			c.log.Warn("a passive actor with messages could not be woken yet; trying again", "actor", name, "in", delay, "err", err)
			select {
			case <-c.quit:
				return
			case <-time.After(delay):
			}
		}
	}()
}

// wake makes a passive actor a child of its supervisor again and waits
// for its start (bounded by its start timeout); an actor that is not
// passive is left as it is.
func (c *Core) wake(ctx context.Context, name string) error {
	unlock, err := c.names.lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	c.wakeLocked(name)
	return nil
}

// wakeLocked is wake for a caller that holds name's lock.
func (c *Core) wakeLocked(name string) {
	c.mu.Lock()
	_, asleep := c.asleep[name]
	spec, live := c.specs[name]
	if !asleep || !live || c.closed {
		if asleep && !live {
			delete(c.asleep, name)
		}
		c.mu.Unlock()
		return
	}
	if !c.owns(name) {
		// Another core of the cluster runs it. It stays passive and no
		// wake is queued any more, so that the Rebalance that brings it
		// back to this core can queue one (a wake left marked queued
		// would keep an owned actor passive for good).
		c.asleep[name] = false
		c.mu.Unlock()
		return
	}
	delete(c.asleep, name)
	sub := c.subs[spec.Behaviour]
	c.mu.Unlock()
	c.cfg.Observer.Woken(spec.Behaviour)
	if sub == nil {
		return // its behaviour's supervisor is being rebuilt: it lists the actor
	}
	c.addChild(sub, *spec, true)
}

// withAwake runs fn with the running actor name (nil if it does not run:
// stopped, starting, failed), holding name's lock, after waking it if it
// is passive: no passivation or wake of it runs meanwhile, so what fn
// sees (a paused actor, a terminated child) stays so when fn returns.
// Pause, StopActor and the repairs use it.
func (c *Core) withAwake(ctx context.Context, name string, fn func(a *actor) error) error {
	unlock, err := c.names.lock(ctx, name)
	if err != nil {
		return fmt.Errorf("actor %q: %w", name, err)
	}
	defer unlock()
	c.wakeLocked(name)
	c.mu.RLock()
	a := c.actors[name]
	c.mu.RUnlock()
	return fn(a)
}

// startSweeper starts the goroutine that passivates idle actors, if any
// behaviour passivates. It looks every quarter of the shortest
// PassivateAfter (between 10 ms and 10 s), so an actor is passive at
// most about 1.25 PassivateAfter after its last work.
func (c *Core) startSweeper() {
	shortest := time.Duration(0)
	for _, b := range c.cfg.Behaviours {
		if d := b.PassivateAfter; d > 0 && (shortest == 0 || d < shortest) {
			shortest = d
		}
	}
	if shortest == 0 {
		return
	}
	every := min(max(shortest/4, 10*time.Millisecond), 10*time.Second)
	c.sweeper.stop = make(chan struct{})
	c.sweeper.done.Add(1)
	go func() {
		defer c.sweeper.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-c.sweeper.stop:
				return
			case now := <-t.C:
				c.sweep(now)
			}
		}
	}()
}

// stopSweeper stops the sweeper and waits for its passivations in
// progress (each bounded by a stop timeout).
func (c *Core) stopSweeper() {
	if c.sweeper.stop != nil {
		close(c.sweeper.stop)
		c.sweeper.done.Wait()
	}
}

// sweep passivates the actors idle for their behaviour's PassivateAfter.
func (c *Core) sweep(now time.Time) {
	c.mu.RLock()
	var idle []*actor
	for _, a := range c.actors {
		if after := c.cfg.Behaviours[a.spec.Behaviour].PassivateAfter; after > 0 && c.passivates(a.spec) && a.idleFor(now, after) {
			idle = append(idle, a)
		}
	}
	c.mu.RUnlock()
	for _, a := range idle {
		select {
		case <-c.sweeper.stop:
			return
		default:
		}
		if err := c.passivate(a); err != nil {
			a.logger().Warn("an idle actor could not be passivated; it stays in memory", "err", err)
		}
	}
}

// idleFor says whether the actor has done nothing for `after`: started
// (an actor is in c.actors before its module is fetched), no loop
// running, not paused, stopping, failed or under quarantine.
func (a *actor) idleFor(now time.Time, after time.Duration) bool {
	if !a.ready.Load() {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running || a.paused || a.stopping || a.err != nil || a.suspect {
		return false
	}
	return now.Sub(time.Unix(0, a.lastWork.Load())) >= after
}

// passivate makes the idle actor a passive: it leaves its supervisor and
// memory. A message that arrives meanwhile wakes it again at once.
func (c *Core) passivate(a *actor) error {
	name, behaviour := a.spec.Name, a.spec.Behaviour
	lctx, cancel := context.WithTimeout(context.Background(), time.Second)
	unlock, err := c.names.lock(lctx, name)
	cancel()
	if err != nil {
		return nil // another change of it is under way: the next sweep looks again
	}
	c.mu.Lock()
	sub := c.subs[behaviour]
	_, live := c.specs[name]
	if c.closed || !live || sub == nil || c.actors[name] != a || !a.idleFor(time.Now(), 0) {
		c.mu.Unlock()
		unlock()
		return nil // shutting down, destroyed, restarting, gone or busy again
	}
	c.asleep[name] = false // from here a notification that misses the actor wakes it
	c.mu.Unlock()
	// Its own bound, beyond the child's stop timeout, which the
	// supervisor enforces itself.
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.stopTimeout(behaviour)+5*time.Second)
	defer cancel()
	err = sub.Terminate(ctx, name)
	if err == nil {
		err = sub.Delete(ctx, name)
	}
	if err != nil && !errors.Is(err, supervisor.ErrUnknownChild) {
		// Terminated but still a child, or not terminated: it must not
		// stay both a child and asleep; make it run again.
		c.mu.Lock()
		delete(c.asleep, name)
		c.mu.Unlock()
		unlock()
		c.runAgain(sub, name)
		return fmt.Errorf("passivate actor %q: %w", name, err)
	}
	unlock()
	if s, err := c.store.Stats(name); err == nil && s.Depth > 0 {
		c.wakeLater(name)
	}
	c.cfg.Observer.Passivated(behaviour)
	a.logger().Debug("actor passivated")
	return nil
}

// runAgain restarts a child whose passivation failed halfway, in the
// background: once its stop is over (Restart refuses a child still
// stopping), unless it runs still, was deleted, or the core shuts down.
func (c *Core) runAgain(sub *supervisor.Supervisor, name string) {
	c.background(func() {
		for delay := 50 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			state, found := childState(sub, name)
			if !found || state == supervisor.Running || state == supervisor.Starting {
				return
			}
			if state == supervisor.Stopped || state == supervisor.Failed {
				ctx, cancel := context.WithTimeout(context.Background(), lockWait)
				err := sub.Restart(ctx, name)
				cancel()
				if err == nil || errors.Is(err, supervisor.ErrUnknownChild) || errors.Is(err, supervisor.ErrStopped) {
					return
				}
			}
			select {
			case <-c.quit:
				return
			case <-time.After(delay):
			}
		}
	})
}

// background runs fn in a goroutine that Shutdown waits for (c.bg),
// unless the core is shutting down already.
func (c *Core) background(fn func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		fn()
	}()
}

// childState is the state of sub's child id, if it has one.
func childState(sub *supervisor.Supervisor, id string) (supervisor.ChildState, bool) {
	for _, ch := range sub.Children() {
		if ch.ID == id {
			return ch.State, true
		}
	}
	return 0, false
}
