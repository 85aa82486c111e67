package core

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/graft-host/graft/core/supervisor"
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

// buildTree creates the root supervisor with one child per behaviour that
// has actors, in the order behaviours first appear among the actors.
func (c *Core) buildTree() (*supervisor.Supervisor, error) {
	var order []string
	byBehaviour := map[string][]ActorConfig{}
	for _, a := range c.cfg.Actors {
		if _, ok := byBehaviour[a.Behaviour]; !ok {
			order = append(order, a.Behaviour)
		}
		byBehaviour[a.Behaviour] = append(byBehaviour[a.Behaviour], a)
	}
	var specs []supervisor.ChildSpec
	for _, b := range order {
		specs = append(specs, c.behaviourSpec(b, byBehaviour[b]))
	}
	return supervisor.New(supervisor.Spec{
		Strategy: supervisor.OneForOne, MaxRestarts: 1 << 30, Period: time.Second,
		BackoffMin: rootBackoffMin, BackoffMax: rootBackoffMax, Logger: c.log,
	}, specs...)
}

// behaviourSpec is the root's child for one behaviour: a supervisor of its
// actors, started without waiting for them (their starts are asynchronous).
func (c *Core) behaviourSpec(behaviour string, actors []ActorConfig) supervisor.ChildSpec {
	return supervisor.ChildSpec{
		ID:          "behaviour/" + behaviour,
		StopTimeout: c.stopTimeout(behaviour) + time.Second,
		Start: func(ctx context.Context) (supervisor.Child, error) {
			sc := c.cfg.Supervision
			var specs []supervisor.ChildSpec
			for _, a := range actors {
				specs = append(specs, c.childSpec(a))
			}
			sub, err := supervisor.New(supervisor.Spec{
				Strategy: sc.Strategy, MaxRestarts: sc.MaxRestarts, Period: sc.Period,
				BackoffMin: sc.BackoffMin, BackoffMax: sc.BackoffMax, Logger: c.log.With("behaviour", behaviour),
			}, specs...)
			if err != nil {
				return nil, fmt.Errorf("supervise behaviour %q: %w", behaviour, err)
			}
			c.mu.Lock()
			c.subs[behaviour] = sub
			c.mu.Unlock()
			nowait, cancel := context.WithCancel(ctx)
			cancel() // the actors start asynchronously; do not wait for them here
			if err := sub.Start(nowait); err != nil {
				select {
				case <-sub.Done():
					return nil, fmt.Errorf("supervise behaviour %q: %w", behaviour, err)
				default:
				}
			}
			return sub, nil
		},
	}
}

// childSpec is an actor's spec in its behaviour's supervisor.
func (c *Core) childSpec(a ActorConfig) supervisor.ChildSpec {
	start := c.startTimeout(a.Behaviour)
	var local []string
	for _, r := range a.Requires {
		if c.specs[r].Behaviour == a.Behaviour {
			local = append(local, r)
		}
	}
	startActor := func(ctx context.Context) (supervisor.Child, error) {
		ch, err := c.startActor(ctx, a)
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

// waitRequired waits (bounded by ctx) until every actor a requires that
// belongs to another behaviour is running.
func (c *Core) waitRequired(ctx context.Context, a ActorConfig) error {
	var remote []string
	for _, r := range a.Requires {
		if c.specs[r].Behaviour != a.Behaviour {
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
		missing := slices.DeleteFunc(slices.Clone(remote), func(r string) bool { return c.actors[r] != nil && c.actors[r].ready.Load() })
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
	spec, ok := c.specs[actor]
	if !ok {
		return nil, fmt.Errorf("actor %q is not configured", actor)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
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
