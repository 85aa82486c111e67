package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/graft-host/graft/core/supervisor"
	"github.com/graft-host/graft/mailbox"
)

// Start starts every configured actor, and every actor made at run time
// that the registry holds, under the root supervisor, and the timer loop
// (timers that came due while the core was down fire now, in due order).
// Starts are asynchronous and concurrent (G7): Start waits until every
// actor has started once or ctx ends, whichever is first; in the second
// case it returns nil and the remaining actors go on starting (or backing
// off) in the background, visible in Status. It fails only if the
// supervisor cannot run at all or gives up.
func (c *Core) Start(ctx context.Context) error {
	if c.sup != nil {
		return nil // already started (RunUntilSignal after Start)
	}
	sup, err := c.buildTree()
	if err != nil {
		return fmt.Errorf("start actors: %w", err)
	}
	c.sup = sup
	c.startTimers()
	c.startSweeper()
	if err := sup.Start(ctx); err != nil {
		select {
		case <-sup.Done():
			return fmt.Errorf("start actors: %w", err)
		default:
		}
		if ctx.Err() == nil {
			return fmt.Errorf("start actors: %w", err)
		}
		c.log.Warn("some actors are still starting", "detail", err)
	}
	return nil
}

// Done is closed when the root supervisor has ended (after Shutdown).
func (c *Core) Done() <-chan struct{} { return c.sup.Done() }

// Err says why the root supervisor ended.
func (c *Core) Err() error { return c.sup.Err() }

// Shutdown stops gracefully: the timer loop stops (pending timers stay
// durable and fire after a restart), actors stop taking batches and let
// the batch in flight commit, then modules stop, then the store closes. At ctx's
// deadline in-flight batches are abandoned (they are redelivered after a
// restart) and plugin process groups are killed. A restart resumes every
// actor from its committed state.
func (c *Core) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.quit)
	c.mu.Unlock()
	var errs []error
	c.stopTimers()
	c.stopSweeper()
	if c.sup != nil {
		if err := c.sup.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop actors: %w", err))
		}
	}
	c.bg.Wait() // the Adds of run-time actors end with their supervisors
	c.shutdownDownModule(ctx)
	c.mu.Lock()
	pools := make([]*modulePool, 0, len(c.pools))
	for _, p := range c.pools {
		pools = append(pools, p)
	}
	c.mu.Unlock()
	for _, p := range pools {
		stopCtx, cancel := context.WithTimeout(ctx, c.stopTimeout(p.name))
		if err := p.close(stopCtx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if err := c.store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RunUntilSignal starts the core and runs it until SIGTERM or SIGINT, then
// shuts down gracefully within grace; a second signal forces the shutdown
// at once. It returns the root supervisor's error if that gave up first.
func (c *Core) RunUntilSignal(ctx context.Context, grace time.Duration) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := c.Start(ctx); err != nil {
		if serr := c.Shutdown(ctx); serr != nil {
			return errors.Join(err, fmt.Errorf("shut down after the failed start: %w", serr))
		}
		return err
	}
	var cause error
	select {
	case sig := <-sigs:
		c.log.Info("shutting down", "signal", sig.String(), "grace", grace)
	case <-ctx.Done():
		c.log.Info("shutting down", "reason", ctx.Err())
	case <-c.Done():
		cause = c.Err()
		c.log.Error("root supervisor gave up; shutting down", "err", cause)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			c.log.Warn("second signal: forcing shutdown", "signal", sig.String())
			cancel()
		case <-shutCtx.Done():
		}
	}()
	return errors.Join(cause, c.Shutdown(shutCtx))
}

// StopActor stops an actor (it stays stopped: not restarted) once its batch
// in flight has committed. Its messages keep arriving durably.
func (c *Core) StopActor(ctx context.Context, name string) error {
	// A passive actor is woken first: a stopped actor is a child of its
	// supervisor, terminated, which StartActor restarts. The name's lock
	// keeps a passivation from racing the stop.
	err := c.withAwake(ctx, name, func(*actor) error {
		sub, err := c.sub(name)
		if err != nil {
			return err
		}
		return sub.Terminate(ctx, name)
	})
	if err != nil {
		return fmt.Errorf("stop actor %q: %w", name, err)
	}
	_ = c.store.SetStatus(ctx, name, "stopped")
	return nil
}

// StartActor starts a stopped actor again.
func (c *Core) StartActor(ctx context.Context, name string) error {
	c.mu.RLock()
	_, asleep := c.asleep[name]
	c.mu.RUnlock()
	if asleep {
		return nil // passive: it runs as soon as it has work
	}
	sub, err := c.sub(name)
	if err != nil {
		return fmt.Errorf("start actor %q: %w", name, err)
	}
	if err := sub.Restart(ctx, name); err != nil {
		return fmt.Errorf("start actor %q: %w", name, err)
	}
	return nil
}

// StatusUnconfigured is the ActorStatus.Status of an actor the registry
// holds but the core does not run: a configured actor that left the
// config (or one made at run time whose behaviour left it). Its registry
// entry, mailbox, state and timers stay, and messages sent to it queue;
// it runs again once the config lists it (or its behaviour) again, and
// DestroyActor removes it for good.
const StatusUnconfigured = "unconfigured"

// unconfigured says whether the core keeps r without running it.
func (c *Core) unconfigured(r mailbox.Actor) bool {
	if _, known := c.cfg.Behaviours[r.Behaviour]; !known {
		return true
	}
	_, configured := c.configured[r.Name]
	return r.Origin == mailbox.OriginConfig && !configured
}

// DestroyActor removes an actor for good: it stops at once (its batch in
// flight is abandoned), leaves supervision, and the store deletes its
// registry entry, mailbox, state, replies, idempotency window, dead
// letters, the timers it set and the sends scheduled to it from outside
// (SendAfter); the Calls waiting on it fail with ErrDestroyed. Afterwards
// the name is unknown: a send to it is refused, except that a virtual
// name is created anew, empty, by its next message, and a configured
// actor still in the config is registered again, empty, at the next
// start of the core. An actor that other actors (configured, not
// destroyed) require is refused, naming them: destroy them first, as
// destroying one actor's data is never a side effect of destroying
// another's. StopActor stops an actor and keeps its data.
//
// A destroy of an actor just made at run time waits for its supervision
// to begin (its first start, bounded), so that no child of a destroyed
// actor is left behind; its end is never counted as a crash by its
// supervisor.
func (c *Core) DestroyActor(ctx context.Context, name string) error {
	unlock, err := c.names.lock(ctx, name)
	if err != nil {
		return fmt.Errorf("destroy actor %q: %w", name, err)
	}
	defer unlock()
	if deps := c.dependents(name); len(deps) > 0 {
		return fmt.Errorf("destroy actor %q: actors %s require it (requires in the config): destroy them first, or drop the requirement", name, strings.Join(deps, ", "))
	}
	r, err := c.store.Actor(ctx, name)
	if err != nil {
		return fmt.Errorf("destroy actor %q: %w", name, err)
	}
	c.mu.Lock()
	spec, supervised := c.specs[name]
	delete(c.specs, name) // a behaviour supervisor rebuilt from now on leaves it out
	delete(c.asleep, name)
	sub := c.subs[r.Behaviour]
	a := c.actors[name]
	c.mu.Unlock()
	if a != nil {
		a.abandonOnStop() // no grace: the stops below abandon its batch in flight
	}
	if supervised && sub != nil {
		// Terminate stops the actor: its supervisor does not see the end
		// of a child it terminated as an exit to restart. Delete takes
		// only a stopped child.
		err := sub.Terminate(ctx, name)
		if err == nil {
			err = sub.Delete(ctx, name)
		}
		if err != nil && !errors.Is(err, supervisor.ErrUnknownChild) && !errors.Is(err, supervisor.ErrStopped) {
			c.restoreSpec(*spec)
			return fmt.Errorf("destroy actor %q: %w", name, err)
		}
	}
	if a != nil {
		// Unsupervised, or its supervisor is stopping: stop it here (a
		// no-op for an actor Terminate stopped).
		_ = a.Stop(ctx)
	}
	if err := c.store.Remove(ctx, name); err != nil {
		if supervised {
			c.restoreSpec(*spec)
		}
		return fmt.Errorf("destroy actor %q: %w", name, err)
	}
	if s, ok := c.store.(scheduler); ok {
		// The sends scheduled to it from outside go with it, so an actor
		// spawned later under the same name never receives them (a store
		// whose Remove deletes them already finds none here).
		if _, err := s.Unschedule(ctx, name); err != nil {
			c.log.Warn("actor destroyed, but the sends scheduled to it stay: they are dropped when they fire", "actor", name, "err", err)
		}
	}
	c.waiters.failActor(name, fmt.Errorf("actor %q: %w", name, ErrDestroyed))
	c.log.Info("actor destroyed", "actor", name, "behaviour", r.Behaviour)
	return nil
}

// restoreSpec supervises again an actor whose destruction failed. The
// caller (DestroyActor) holds the name's lock, which addListed waits for.
func (c *Core) restoreSpec(spec ActorConfig) {
	c.mu.Lock()
	c.specs[spec.Name] = &spec
	sub := c.subs[spec.Behaviour]
	if sub != nil && !c.closed {
		c.bg.Add(1)
	} else {
		sub = nil
	}
	c.mu.Unlock()
	if sub != nil {
		go func() {
			defer c.bg.Done()
			c.addListed(sub, spec)
		}()
	}
}

// dependents lists the supervised actors that require name, directly or
// not.
func (c *Core) dependents(name string) []string {
	var out []string
	seen := map[string]bool{name: true}
	queue := []string{name}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, a := range c.cfg.Actors {
			if _, live := c.specs[a.Name]; !live {
				continue
			}
			for _, r := range a.Requires {
				if r == n && !seen[a.Name] {
					seen[a.Name] = true
					out = append(out, a.Name)
					queue = append(queue, a.Name)
				}
			}
		}
	}
	return out
}

// ActorStatus is one row of `graft status`.
type ActorStatus struct {
	Name, Behaviour string
	// Origin says how the actor came to exist: mailbox.OriginConfig,
	// OriginSpawn or OriginVirtual.
	Origin string
	Module string // code version of the committed state (before the first commit: of the actor's module)
	Schema uint32
	// Status is the supervisor state (starting, running, backoff,
	// stopped, failed), "passive" (StatusPassive) for an actor out of
	// memory until its next message, or "unconfigured" for an actor the registry holds
	// but the core does not run: a configured actor that left the config,
	// or one made at run time whose behaviour left it.
	Status         string
	Depth          uint64
	InFlight       int64
	Processed      uint64
	Failed         uint64
	Restarts       int
	ModuleRestarts int
	DeadLetters    uint64
	LastExit       string
	Pid            int
	Uptime         time.Duration
	LastError      string
	// Owner, in a cluster, names the member that runs the actor.
	Owner string
}

// Status reports every actor of the registry: configured, spawned and
// virtual ones, and those the core keeps without running them
// ("unconfigured"). It never waits on an actor or a module, so it answers
// while starts and upgrades are in progress (G5).
func (c *Core) Status(ctx context.Context) ([]ActorStatus, error) {
	records, err := c.store.Actors(ctx)
	if err != nil {
		return nil, err
	}
	sup := c.childStatuses()
	out := make([]ActorStatus, 0, len(records))
	for _, r := range records {
		st := ActorStatus{Name: r.Name, Behaviour: r.Behaviour, Origin: r.Origin, Module: r.Module, Schema: r.Schema, Status: r.Status}
		if c.unconfigured(r) {
			st.Status = StatusUnconfigured
		}
		if s, err := c.store.Stats(r.Name); err == nil {
			st.Depth, st.DeadLetters = s.Depth, s.DeadLetters
		}
		if ch, ok := sup[r.Name]; ok {
			st.Status, st.Restarts = ch.State.String(), ch.Restarts
			if ch.LastError != nil {
				st.LastError = ch.LastError.Error()
			}
		}
		c.mu.RLock()
		a := c.actors[r.Name]
		if _, asleep := c.asleep[r.Name]; asleep && a == nil {
			st.Status = StatusPassive
		}
		if c.cfg.Placement != nil {
			st.Owner = c.cfg.Placement.OwnerOf(r.Name)
			if a == nil && !c.cfg.Placement.Owns(r.Name) {
				st.Status = StatusRemote
			}
		}
		c.mu.RUnlock()
		if a != nil {
			st.InFlight, st.Processed, st.Failed = a.inFlight.Load(), a.processed.Load(), a.failed.Load()
			st.Uptime = time.Since(a.started)
			a.mu.Lock()
			pool := a.pool
			a.mu.Unlock()
			ps := pool.status()
			st.ModuleRestarts, st.LastExit, st.Pid = ps.Restarts, ps.LastExit, ps.Pid
			if st.Module == "" {
				// No state committed yet (no message handled): show the
				// module the actor runs on, whose Init will make its first
				// state, rather than "-" and schema 0; after an upgrade
				// that is the new module, as for the actors that moved.
				st.Module, st.Schema = c.poolVersion(r.Behaviour, pool, ps)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// poolVersion is the code and schema version of the module pool runs (ps
// is its status). A private pool that has not started a generation yet
// (an own-process actor just moved by an upgrade) runs the same binary as
// the behaviour's shared pool of that binary, if there is one.
func (c *Core) poolVersion(behaviour string, pool *modulePool, ps poolStatus) (string, uint32) {
	if ps.Version != "" {
		return ps.Version, ps.Schema
	}
	key := behaviour + "\x00" + pool.config().Path
	c.mu.RLock()
	shared := c.pools[key]
	c.mu.RUnlock()
	if shared == nil || shared == pool {
		return "", 0
	}
	ss := shared.status()
	return ss.Version, ss.Schema
}
