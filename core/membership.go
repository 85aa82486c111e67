package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/graft-host/graft/core/supervisor"
	"github.com/graft-host/graft/mailbox"
)

// Membership of the supervised set while the core runs. Three things
// change which actors the core supervises: the store's report that an
// actor was made at run time (created, then adopt), a destroy
// (DestroyActor), and the rebuild of a behaviour supervisor by the root
// (behaviourSpec, installSub). For one actor name the first two, and
// every addition of a child for it, are serialized by c.names: a destroy
// waits for an adoption in progress to have added its child (so that it
// terminates and deletes it), and an adoption that comes after a destroy
// finds the actor gone from the store and supervises nothing. A rebuild
// lists the supervised set without that lock (it covers every actor of a
// behaviour at once), so a rebuild that listed an actor just before it
// was destroyed can still start a child for it: that start finds no actor
// in the store and ends the child for good (goneAtStart) instead of
// failing, which would count toward the restart intensity and, repeated,
// restart the whole behaviour.

// lockWait bounds how long a background membership change waits for
// another change of the same name (each holder's own work is bounded: a
// first start, a stop, a store write).
const lockWait = time.Minute

// nameLocks is a lock per actor name. It is keyed rather than one mutex
// for all membership changes because a holder may wait for a whole first
// start (up to the behaviour's start timeout) or a synced store write: one
// mutex would queue every virtual actor's first send, and every destroy,
// behind the slowest of them. An entry lives while someone holds or waits
// for it, so idle names cost nothing.
type nameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

// nameLock is one name's entry: a one-token semaphore, so that a waiter
// can give up when its ctx ends.
type nameLock struct {
	sem  chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

// lock takes name's lock, waiting at most until ctx ends, and returns
// the function that releases it.
func (l *nameLocks) lock(ctx context.Context, name string) (unlock func(), err error) {
	e, drop := l.entry(name)
	select {
	case e.sem <- struct{}{}:
		return func() { <-e.sem; drop() }, nil
	case <-ctx.Done():
		drop()
		return nil, fmt.Errorf("wait for the other change to actor %q: %w", name, ctx.Err())
	}
}

// lockWithin is lock bounded by d. A free lock is taken with no timer:
// a deadline's timer for each virtual actor's adoption was a measurable
// share of the cost of its first send (BenchmarkVirtualFirstSend).
func (l *nameLocks) lockWithin(name string, d time.Duration) (unlock func(), err error) {
	e, drop := l.entry(name)
	select {
	case e.sem <- struct{}{}:
		return func() { <-e.sem; drop() }, nil
	default:
		drop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.lock(ctx, name)
}

// entry returns name's entry, counted as used until drop is called.
func (l *nameLocks) entry(name string) (e *nameLock, drop func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*nameLock)
	}
	e = l.m[name]
	if e == nil {
		e = &nameLock{sem: make(chan struct{}, 1)}
		l.m[name] = e
	}
	e.refs++
	l.mu.Unlock()
	return e, func() {
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
}

// adopt supervises name, an actor of behaviour that the store reported
// made at run time, unless it was destroyed since: it runs in a goroutine
// of created's, holding name's lock, so that a destroy comes wholly
// before (the store no longer has the actor: nothing to supervise) or
// wholly after (the child it added is there to terminate and delete).
func (c *Core) adopt(name, behaviour string) {
	unlock, err := c.names.lockWithin(name, lockWait)
	if err != nil {
		c.log.Error("an actor made at run time is not supervised (restart the core to start it)", "actor", name, "err", err)
		return
	}
	defer unlock()
	if _, err := c.store.Actor(context.Background(), name); errors.Is(err, mailbox.ErrUnknownActor) { // in memory: no wait
		c.log.Debug("actor destroyed before its supervision began", "actor", name)
		return
	} // another error: supervise it all the same, and its start says what is wrong
	c.mu.Lock()
	if _, dup := c.specs[name]; dup || c.closed {
		c.mu.Unlock()
		return
	}
	spec := runtimeSpec(name, behaviour)
	c.specs[name] = &spec
	if !c.owns(name) { // another core of the cluster runs it
		c.asleep[name] = false
		c.mu.Unlock()
		return
	}
	sub := c.subs[behaviour]
	c.mu.Unlock()
	// No supervisor yet (before Start), or one being rebuilt: it takes the
	// actor from c.specs (see installSub).
	if sub != nil {
		c.addChild(sub, spec, false)
	}
}

// addListed adds spec's actor to sub (installSub's actors created while
// the supervisor was rebuilt, restoreSpec's actor whose destroy failed),
// holding its name's lock, unless it left the supervised set meanwhile.
func (c *Core) addListed(sub *supervisor.Supervisor, spec ActorConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), lockWait)
	defer cancel()
	unlock, err := c.names.lock(ctx, spec.Name)
	if err != nil {
		c.log.Error("an actor is not supervised (restart the core to start it)", "actor", spec.Name, "err", err)
		return
	}
	defer unlock()
	c.mu.RLock()
	cur, live := c.specs[spec.Name]
	closed := c.closed
	c.mu.RUnlock()
	if live && !closed {
		c.addChild(sub, *cur, true)
	}
}

// goneAtStart handles a start of name in sub that found no such actor in
// the store (mailbox.ErrUnknownActor). If the supervised set no longer
// lists it either, it was destroyed after sub listed its children: the
// child is terminated and deleted, for good, from within its own start
// (the supervisor's loop never waits for a start, so it can), and its
// start then reports to nobody. If the set lists it, it was created anew
// since the failed claim, and goneAtStart reports that the start should
// be tried again. Otherwise the start's error stands, as a failure.
func (c *Core) goneAtStart(ctx context.Context, sub *supervisor.Supervisor, spec ActorConfig) (retry bool) {
	unlock, err := c.names.lock(ctx, spec.Name)
	if err != nil {
		return false // a destroy of it in progress terminates this start
	}
	defer unlock()
	c.mu.RLock()
	_, live := c.specs[spec.Name]
	c.mu.RUnlock()
	if live {
		_, err := c.store.Actor(ctx, spec.Name)
		return err == nil
	}
	if sub == nil {
		return false
	}
	// Not the start's ctx: terminating the child cancels it.
	sctx, cancel := context.WithTimeout(context.Background(), c.stopTimeout(spec.Behaviour)+time.Second)
	defer cancel()
	if err := sub.Terminate(sctx, spec.Name); err != nil {
		c.log.Debug("a child whose actor is gone could not be terminated", "actor", spec.Name, "err", err)
		return false
	}
	if err := sub.Delete(sctx, spec.Name); err != nil {
		c.log.Debug("a child whose actor is gone could not be deleted (it stays stopped)", "actor", spec.Name, "err", err)
	}
	c.log.Info("a destroyed actor's child left its supervisor", "actor", spec.Name, "behaviour", spec.Behaviour)
	return false
}
