package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/graft-host/graft/core/supervisor"
	"github.com/graft-host/graft/mailbox"
)

// The supervision tree (G5, G7):
//
//	root (one_for_one, never gives up; restarts a failed behaviour with
//	│     backoff up to 30 s, so one broken behaviour harms only its actors)
//	├── behaviour "ping"  (Config.Supervision: strategy, intensity, backoff)
//	│   ├── actor ping-1
//	│   └── actor ping-2
//	└── behaviour "pong"
//	    └── actor pong
//
// A behaviour supervisor that exceeds its restart intensity fails upward,
// as in OTP; the root restarts it later instead of taking the whole core
// down. Requirements between actors of one behaviour order their starts
// inside its supervisor; a requirement on an actor of another behaviour is
// waited for by the actor's start (bounded by its start timeout).

const (
	rootBackoffMin = 100 * time.Millisecond
	rootBackoffMax = 30 * time.Second
)

// buildTree creates the root supervisor with one child per configured
// behaviour (those without configured actors too: actors made at run time
// join them), in the order behaviours first appear among the actors, then
// by name.
func (c *Core) buildTree() (*supervisor.Supervisor, error) {
	var order []string
	seen := map[string]bool{}
	for _, a := range c.cfg.Actors {
		if !seen[a.Behaviour] {
			seen[a.Behaviour] = true
			order = append(order, a.Behaviour)
		}
	}
	var rest []string
	for b := range c.cfg.Behaviours {
		if !seen[b] {
			rest = append(rest, b)
		}
	}
	slices.Sort(rest)
	var specs []supervisor.ChildSpec
	for _, b := range append(order, rest...) {
		specs = append(specs, c.behaviourSpec(b))
	}
	return supervisor.New(supervisor.Spec{
		Strategy: supervisor.OneForOne, MaxRestarts: 1 << 30, Period: time.Second,
		BackoffMin: rootBackoffMin, BackoffMax: rootBackoffMax, Logger: c.log,
	}, specs...)
}

// behaviourSpec is the root's child for one behaviour: a supervisor of its
// actors, started without waiting for them (their starts are asynchronous).
// Each start (the first, and every restart by the root) takes the actors
// from the current set (c.specs), so a restarted behaviour keeps the
// actors made at run time and leaves out the destroyed ones.
func (c *Core) behaviourSpec(behaviour string) supervisor.ChildSpec {
	return supervisor.ChildSpec{
		ID:          "behaviour/" + behaviour,
		StopTimeout: c.stopTimeout(behaviour) + time.Second,
		Start: func(ctx context.Context) (supervisor.Child, error) {
			sc := c.cfg.Supervision
			// Idle actors start passive (passivation.go). The backlog is
			// read before c.mu: a message that arrives after it was read
			// finds its actor passive, and its notification wakes it.
			busy, ok := c.backlog(ctx, behaviour)
			c.mu.Lock()
			if ok || c.cfg.Placement != nil { // another core's actors sleep here, whatever the behaviour
				c.sleepIdle(behaviour, busy)
			}
			actors := c.awakeActors(behaviour)
			c.mu.Unlock()
			specs := make([]supervisor.ChildSpec, 0, len(actors))
			have := make(map[string]bool, len(actors))
			var owner atomic.Pointer[supervisor.Supervisor] // the children's supervisor, made after their specs
			for _, a := range actors {
				specs = append(specs, c.childSpec(a, owner.Load))
				have[a.Name] = true
			}
			sub, err := supervisor.New(supervisor.Spec{
				Strategy: sc.Strategy, MaxRestarts: sc.MaxRestarts, Period: sc.Period,
				BackoffMin: sc.BackoffMin, BackoffMax: sc.BackoffMax, Logger: c.log.With("behaviour", behaviour),
			}, specs...)
			if err != nil {
				return nil, fmt.Errorf("supervise behaviour %q: %w", behaviour, err)
			}
			owner.Store(sub)
			nowait, cancel := context.WithCancel(ctx)
			cancel() // the actors start asynchronously; do not wait for them here
			if err := sub.Start(nowait); err != nil {
				select {
				case <-sub.Done():
					return nil, fmt.Errorf("supervise behaviour %q: %w", behaviour, err)
				default:
				}
			}
			c.installSub(behaviour, sub, have)
			if ok {
				c.wakeQueued(ctx)
			}
			return sub, nil
		},
	}
}

// installSub makes sub the running supervisor of behaviour and adds the
// actors created since its children were listed (adopt saw the old
// supervisor, or none, and left them to this rebuild).
func (c *Core) installSub(behaviour string, sub *supervisor.Supervisor, have map[string]bool) {
	c.mu.Lock()
	c.subs[behaviour] = sub
	var missing []ActorConfig
	if !c.closed {
		for _, a := range c.awakeActors(behaviour) {
			if !have[a.Name] {
				missing = append(missing, a)
			}
		}
		c.bg.Add(len(missing))
	}
	c.mu.Unlock()
	for _, a := range missing {
		go func() {
			defer c.bg.Done()
			c.addListed(sub, a)
		}()
	}
}

// childSpec is an actor's spec in its behaviour's supervisor, which owner
// returns once it exists (before any start). A start that finds the
// actor destroyed ends the child instead of failing (goneAtStart).
func (c *Core) childSpec(a ActorConfig, owner func() *supervisor.Supervisor) supervisor.ChildSpec {
	start := c.startTimeout(a.Behaviour)
	var local []string
	for _, r := range a.Requires {
		if c.configuredBehaviour(r) == a.Behaviour {
			local = append(local, r)
		}
	}
	startActor := func(ctx context.Context) (supervisor.Child, error) {
		ch, err := c.startActor(ctx, a)
		if errors.Is(err, mailbox.ErrUnknownActor) && c.goneAtStart(ctx, owner(), a) {
			ch, err = c.startActor(ctx, a) // created anew since its claim failed
		}
		if errors.Is(err, ErrNotOwned) {
			c.notOwnedAtStart(owner(), a)
		}
		return ch, c.nameSource(a.Behaviour, err) // the user's binary, not its cached copy
	}
	return supervisor.ChildSpec{
		ID:           a.Name,
		Start:        startActor,
		Restart:      a.Restart,
		Requires:     local,
		StartTimeout: 2*start + time.Second, // room for required actors, then the module's own bounded start
		StopTimeout:  c.stopTimeout(a.Behaviour),
	}
}

// configuredBehaviour is the behaviour of the configured actor name, or
// "" if the config does not list it.
func (c *Core) configuredBehaviour(name string) string {
	if a := c.configured[name]; a != nil {
		return a.Behaviour
	}
	return ""
}

// waitRequired waits (bounded by ctx) until every actor a requires that
// belongs to another behaviour is running.
func (c *Core) waitRequired(ctx context.Context, a ActorConfig) error {
	var remote []string
	for _, r := range a.Requires {
		if c.configuredBehaviour(r) != a.Behaviour {
			remote = append(remote, r)
		}
	}
	if len(remote) == 0 {
		return nil
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		c.mu.RLock()
		missing := slices.DeleteFunc(slices.Clone(remote), func(r string) bool {
			return (c.actors[r] != nil && c.actors[r].ready.Load()) || c.runsElsewhere(r)
		})
		c.mu.RUnlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for required actors %v: %w", missing, ctx.Err())
		}
	}
}

// sub returns the supervisor of an actor's behaviour.
func (c *Core) sub(actor string) (*supervisor.Supervisor, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	spec, ok := c.specs[actor]
	if !ok {
		return nil, fmt.Errorf("actor %q is not supervised (not configured, destroyed, or never created): %w", actor, mailbox.ErrUnknownActor)
	}
	s := c.subs[spec.Behaviour]
	if s == nil {
		return nil, fmt.Errorf("behaviour %q of actor %q is not running (restarting after failures?)", spec.Behaviour, actor)
	}
	return s, nil
}

// childStatuses merges the actors' rows of every behaviour supervisor.
func (c *Core) childStatuses() map[string]supervisor.ChildStatus {
	c.mu.RLock()
	subs := make([]*supervisor.Supervisor, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.RUnlock()
	out := map[string]supervisor.ChildStatus{}
	for _, s := range subs {
		for _, ch := range s.Children() {
			out[ch.ID] = ch
		}
	}
	return out
}

// RequirementCycle returns one cycle in the actors' requirements, as the
// path that closes it (a, b, a), or nil. The config loader uses it too, so
// a cycle is reported the same way before anything starts.
func RequirementCycle(actors []ActorConfig) []string {
	if !slices.ContainsFunc(actors, func(a ActorConfig) bool { return len(a.Requires) > 0 }) {
		return nil // no requirement at all (the common case of a large registry)
	}
	requires := map[string][]string{}
	for _, a := range actors {
		if _, dup := requires[a.Name]; !dup {
			requires[a.Name] = a.Requires
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch state[n] {
		case onPath:
			i := slices.Index(path, n)
			return append(slices.Clone(path[i:]), n)
		case done:
			return nil
		}
		state[n] = onPath
		path = append(path, n)
		for _, r := range requires[n] {
			if cycle := visit(r); cycle != nil {
				return cycle
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, a := range actors {
		if cycle := visit(a.Name); cycle != nil {
			return cycle
		}
	}
	return nil
}
