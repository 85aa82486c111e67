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

// Placement is how a core takes part in a cluster of cores that share one
// store: every core knows every actor (the store's registry), and runs
// those it owns. An actor this core does not own is kept as a passive one
// (passivation.go) that no message wakes here: its messages are durable
// in the shared store and its owner's core handles them.
//
//	cluster (Owns flips)            core
//	────────────────────            ────
//	acquired X ──────────────────▶ Rebalance: wake X: Claim (a new epoch
//	                                fences the last owner), read the state,
//	                                start, first batch
//	lost X (another core's) ─────▶ Rebalance: release X between two
//	                                commits (its batch in flight commits
//	                                first), keep it passive; then the
//	                                cluster gives it up (ReleaseDone)
//
// What keeps two cores from both applying a message is the store's epoch,
// not Owns: a core that still believes it owns X after another claimed it
// fails its next commit with mailbox.ErrFenced, commits nothing, and its
// restarted actor finds that it no longer owns X.
type Placement interface {
	// Owns reports whether this core is to run the actor now. It is
	// called on hot paths (a message's notification) and must not block.
	Owns(name string) bool
	// OwnerOf names the member that runs the actor ("" if none does), for
	// Status.
	OwnerOf(name string) string
}

// ErrNotOwned is the start error of an actor another core of the cluster
// owns: the start gives it back to the passive set instead of failing.
// It is the store's mailbox.ErrNotOwner, which a Claim guarded by the
// ownership returns.
var ErrNotOwned = mailbox.ErrNotOwner

// StatusRemote is the ActorStatus.Status of an actor another core of the
// cluster runs (ActorStatus.Owner names it).
const StatusRemote = "remote"

// runsElsewhere says whether another core of the cluster owns name: a
// requirement it meets there (its messages reach it through the store).
func (c *Core) runsElsewhere(name string) bool {
	if c.cfg.Placement == nil {
		return false
	}
	o := c.cfg.Placement.OwnerOf(name)
	return o != "" && !c.cfg.Placement.Owns(name)
}

// WarmModules starts the shared module of every behaviour and waits for
// them (each bounded by its start timeout): a cluster member does so
// before it joins, so that an actor handed over to it waits for no plugin
// process to start, which is most of a handover's pause otherwise.
func (c *Core) WarmModules(ctx context.Context) {
	var wg sync.WaitGroup
	for name := range c.cfg.Behaviours {
		binary, sha := c.binaryFor(name, mailbox.State{}) // what an actor handed over most likely runs
		pool := c.sharedPool(name, binary, sha)
		if pool == nil {
			return
		}
		wg.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, c.startTimeout(name))
			defer cancel()
			if _, err := pool.get(wctx); err != nil {
				c.log.Debug("a behaviour's module did not start ahead of its actors; it starts with the first one", "behaviour", name, "err", err)
			}
		})
	}
	wg.Wait()
}

// upgradable says whether an upgrade on this core moves name: every actor
// of a core alone; in a cluster, those it runs or keeps passive. One it
// owns that is between two owners, or that cannot start because another
// member upgraded it already (ErrStateUnreadable), is left out: it starts
// on whatever version reads its committed state, and waiting for it would
// fail the upgrade that lets it start.
func (c *Core) upgradable(name string) bool {
	if c.cfg.Placement == nil {
		return true
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.cfg.Placement.Owns(name) {
		return false
	}
	_, asleep := c.asleep[name]
	a := c.actors[name]
	return asleep || (a != nil && a.ready.Load())
}

// owns says whether this core runs name.
func (c *Core) owns(name string) bool {
	return c.cfg.Placement == nil || c.cfg.Placement.Owns(name)
}

// Rebalance brings what this core runs in line with the placement: it
// wakes the actors it owns that are passive with messages queued (or
// whose behaviour does not passivate), and releases, between two
// commits, those it runs but no longer owns. It returns the actors it
// released, for the cluster to give up. The cluster calls it when
// ownership changes.
func (c *Core) Rebalance(ctx context.Context) (released []string, err error) {
	if c.cfg.Placement == nil {
		return nil, nil
	}
	c.mu.RLock()
	var wake, release, stalled []string
	for name, spec := range c.specs {
		_, asleep := c.asleep[name]
		owned := c.cfg.Placement.Owns(name)
		switch {
		case owned && asleep:
			if c.cfg.Behaviours[spec.Behaviour].PassivateAfter <= 0 {
				wake = append(wake, name)
			} else if s, err := c.store.Stats(name); err == nil && s.Depth > 0 {
				wake = append(wake, name)
			}
		case !owned && !asleep:
			release = append(release, name)
		case owned && c.halfReleased[name]:
			stalled = append(stalled, name) // a release that failed halfway: run it again
		}
	}
	c.mu.RUnlock()
	var errs []error
	for _, name := range release {
		if err := c.releaseActor(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		released = append(released, name)
	}
	for _, name := range wake {
		c.wakeLater(name)
	}
	for _, name := range stalled {
		c.restartStalled(name)
	}
	return released, errors.Join(errs...)
}

// restartStalled runs again an actor whose release timed out halfway
// (still a child, stopped) and that came back to this core.
func (c *Core) restartStalled(name string) {
	c.mu.Lock()
	spec, live := c.specs[name]
	var sub *supervisor.Supervisor
	if live {
		sub = c.subs[spec.Behaviour]
	}
	delete(c.halfReleased, name)
	c.mu.Unlock()
	if sub != nil {
		c.runAgain(sub, name)
	}
}

// Released reports whether this core runs nothing of name: it is passive
// here (or gone), so the cluster may give its ownership up.
func (c *Core) Released(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, asleep := c.asleep[name]
	_, live := c.specs[name]
	return c.actors[name] == nil && (asleep || !live)
}

// releaseActor stops name between two commits and keeps it passive, as
// passivation does, whether it is idle or not.
func (c *Core) releaseActor(ctx context.Context, name string) error {
	unlock, err := c.names.lock(ctx, name)
	if err != nil {
		return fmt.Errorf("release actor %q: %w", name, err)
	}
	defer unlock()
	c.mu.Lock()
	spec, live := c.specs[name]
	if !live || c.closed || c.cfg.Placement.Owns(name) {
		c.mu.Unlock()
		return nil
	}
	if _, asleep := c.asleep[name]; asleep {
		c.mu.Unlock()
		return nil
	}
	c.asleep[name] = false // passive; no notification wakes it, as it is not owned
	sub := c.subs[spec.Behaviour]
	c.mu.Unlock()
	if sub == nil {
		return nil // its supervisor is being rebuilt, and puts it to sleep (sleepIdle)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*c.stopTimeout(spec.Behaviour)+5*time.Second)
	defer cancel()
	err = sub.Terminate(sctx, name)
	if err == nil || errors.Is(err, supervisor.ErrUnknownChild) {
		err = sub.Delete(sctx, name)
	}
	if err != nil && !errors.Is(err, supervisor.ErrUnknownChild) {
		// Still a child (its stop is not over): it must not stay both a
		// child and passive, or a wake would find it there and start
		// nothing. The next Rebalance releases it again, or, if this core
		// owns it again by then, it runs again.
		c.mu.Lock()
		delete(c.asleep, name)
		c.halfReleased[name] = true
		c.mu.Unlock()
		return fmt.Errorf("release actor %q to its new owner: %w", name, err)
	}
	c.mu.Lock()
	delete(c.halfReleased, name)
	c.mu.Unlock()
	c.log.Info("actor released to another core of the cluster", "actor", name, "owner", c.cfg.Placement.OwnerOf(name))
	return nil
}

// notOwnedAtStart handles a start that found the actor owned by another
// core: the actor goes back to the passive set, and its child leaves its
// supervisor from within its own start (the supervisor's loop never waits
// for a start, as goneAtStart relies on too), so that the failed start
// counts toward no restart intensity.
func (c *Core) notOwnedAtStart(sub *supervisor.Supervisor, spec ActorConfig) {
	c.mu.Lock()
	if _, live := c.specs[spec.Name]; live {
		c.asleep[spec.Name] = false
	}
	c.mu.Unlock()
	if sub == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.stopTimeout(spec.Behaviour)+time.Second)
	defer cancel()
	if err := sub.Terminate(ctx, spec.Name); err == nil {
		_ = sub.Delete(ctx, spec.Name)
	}
}

// outcomeWaiter is a store that can wait for a message's outcome without
// polling (etcdstore, with a watch).
type outcomeWaiter interface {
	WaitOutcome(ctx context.Context, actor, id string) (mailbox.Receipt, error)
}

// pollOutcome waits for the outcome of a call to an actor another core
// runs: that core commits the reply, and this one finds it in the store,
// watched when the store can, else polled.
func (c *Core) pollOutcome(ctx context.Context, actor, id string) (mailbox.Receipt, error) {
	if w, ok := c.store.(outcomeWaiter); ok {
		return w.WaitOutcome(ctx, actor, id)
	}
	for delay := 2 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		r, err := c.store.Lookup(ctx, actor, id)
		if err == nil && r.Outcome != mailbox.OutcomePending {
			return r, nil
		}
		if err != nil && !errors.Is(err, mailbox.ErrUnknownMessage) {
			return mailbox.Receipt{}, err
		}
		select {
		case <-ctx.Done():
			return mailbox.Receipt{}, ctx.Err()
		case <-time.After(delay):
		}
	}
}
