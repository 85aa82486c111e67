package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graft-host/graft/core/supervisor"
	"github.com/graft-host/graft/mailbox"
)

// Actors made at run time. A spawned actor (Core.Spawn, or a handler's
// ctx.Spawn committed with its effect) and a virtual one (created by the
// first message to a name its behaviour owns) live in the store's
// registry like configured ones. The store reports each creation once it
// is durable (Options.Created, which calls created), and the core
// supervises the new actor under its behaviour's supervisor; at start,
// New reads the run-time actors of the registry back (loadRuntimeActors).
// c.specs is the set of actors the core supervises; a behaviour
// supervisor that the root restarts rebuilds its children from it.

// virtualBehaviour is the store's Options.Virtual: the virtual behaviour
// that owns name ("account/alice" -> "account"), if any. It reads only
// the config, which never changes, so it is fast and pure as the store
// requires.
func (c *Core) virtualBehaviour(name string) (string, bool) {
	b, key, ok := strings.Cut(name, "/")
	if !ok || key == "" {
		return "", false
	}
	if bc, known := c.cfg.Behaviours[b]; !known || !bc.Virtual {
		return "", false
	}
	return b, true
}

// checkVirtual checks the virtual behaviours of cfg: a name without "/",
// and no configured actor of another behaviour in their namespace.
func checkVirtual(cfg Config) []error {
	var errs []error
	for name, b := range cfg.Behaviours {
		if b.Virtual && strings.Contains(name, "/") {
			errs = append(errs, fmt.Errorf("behaviour %q: a virtual behaviour's name cannot contain \"/\" (it owns the actor names %s/KEY)", name, name))
		}
	}
	for _, a := range cfg.Actors {
		if owner := namespaceOwner(cfg, a.Name); owner != "" && owner != a.Behaviour {
			errs = append(errs, fmt.Errorf("actor %q: its name belongs to virtual behaviour %q (which owns every name %s/KEY), but it has behaviour %q: rename it, or give it behaviour %q",
				a.Name, owner, owner, a.Behaviour, owner))
		}
	}
	return errs
}

// namespaceOwner is the virtual behaviour of cfg whose namespace holds
// name, or "".
func namespaceOwner(cfg Config, name string) string {
	b, key, ok := strings.Cut(name, "/")
	if ok && key != "" && cfg.Behaviours[b].Virtual {
		return b
	}
	return ""
}

// loadRuntimeActors adds the registry's spawned and virtual actors whose
// behaviour is configured to the supervised set. An actor whose behaviour
// is no longer configured, like a configured actor that left the config,
// keeps its data and is not started (Status shows it "unconfigured").
func (c *Core) loadRuntimeActors(ctx context.Context) error {
	// Listed before c.mu is taken: the store's hooks take c.mu from its
	// writers, which may hold what Range waits for.
	var made []mailbox.Actor
	err := c.store.Range(ctx, func(r mailbox.Actor) bool {
		if r.Origin == mailbox.OriginSpawn || r.Origin == mailbox.OriginVirtual {
			made = append(made, r)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("list the registry's actors: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range made {
		if _, configured := c.specs[r.Name]; configured {
			continue
		}
		if _, known := c.cfg.Behaviours[r.Behaviour]; known {
			spec := runtimeSpec(r.Name, r.Behaviour)
			c.specs[r.Name] = &spec
		}
	}
	return nil
}

// runtimeSpec is the spec of an actor made at run time: permanent, in its
// behaviour's shared module, with no requirements.
func runtimeSpec(name, behaviour string) ActorConfig {
	return ActorConfig{Name: name, Behaviour: behaviour, Restart: supervisor.Permanent}
}

// created is the store's Options.Created: an actor made at run time is
// durable, so supervise it. It runs on the writer's goroutine (maybe an
// actor committing its spawns), so it never waits: adopt, in a goroutine
// of its own, adds the actor to the supervised set and its supervisor,
// unless a destroy came first (see membership.go).
func (c *Core) created(name, behaviour string) {
	if _, known := c.cfg.Behaviours[behaviour]; !known {
		c.log.Warn("an actor was created with a behaviour the config does not declare; it is not started", "actor", name, "behaviour", behaviour)
		return
	}
	c.background(func() { c.adopt(name, behaviour) })
}

// addChild adds an actor made at run time to its behaviour's supervisor,
// which starts it. With waitStart it waits for that first start
// (bounded), for callers that use the running actor next (a wake);
// otherwise it returns once the child is supervised (an adoption: a new
// virtual actor's first send need not wait for it). A child it already
// has (added by a rebuild), or a supervisor that is stopping or not yet
// started (its rebuild adds the actor from c.specs), is not an error.
// Callers hold the name's lock (adopt, addListed, wake), so a destroy
// that comes next finds the child there to terminate.
func (c *Core) addChild(sub *supervisor.Supervisor, spec ActorConfig, waitStart bool) {
	cs := c.childSpec(spec, func() *supervisor.Supervisor { return sub })
	wait := cs.StartTimeout + time.Second
	add := sub.Add
	if !waitStart {
		wait, add = lockWait, sub.Enroll // only the supervisor's loop to reach
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := add(ctx, cs)
	switch {
	case err == nil, errors.Is(err, supervisor.ErrDuplicateChild), errors.Is(err, supervisor.ErrStopped),
		errors.Is(err, supervisor.ErrNotStarted), errors.Is(err, context.DeadlineExceeded):
	default:
		// A failed first start: the supervisor retries it as for any actor.
		c.log.Debug("actor made at run time did not start at once", "actor", spec.Name, "err", err)
	}
}

// behaviourActors lists the supervised actors of behaviour: the
// configured ones in config order, then those made at run time by name.
// Callers hold c.mu.
func (c *Core) behaviourActors(behaviour string) []ActorConfig {
	return c.listActors(behaviour, false)
}

// awakeActors is behaviourActors less the passive ones: the children of
// behaviour's supervisor. Callers hold c.mu.
func (c *Core) awakeActors(behaviour string) []ActorConfig {
	return c.listActors(behaviour, true)
}

// listActors is behaviourActors, less the passive actors if awakeOnly.
// It filters before it copies: with a million actors, listing them all
// to keep the few awake would be most of a start.
func (c *Core) listActors(behaviour string, awakeOnly bool) []ActorConfig {
	keep := func(name string) bool {
		if !awakeOnly {
			return true
		}
		_, asleep := c.asleep[name]
		return !asleep
	}
	var out, runtime []ActorConfig
	for i := range c.cfg.Actors {
		a := &c.cfg.Actors[i]
		if a.Behaviour != behaviour || !keep(a.Name) {
			continue
		}
		if _, live := c.specs[a.Name]; live {
			out = append(out, *a)
		}
	}
	for name, a := range c.specs {
		if a.Behaviour != behaviour || !keep(name) {
			continue
		}
		if _, configured := c.configured[name]; !configured {
			runtime = append(runtime, *a)
		}
	}
	slices.SortFunc(runtime, func(x, y ActorConfig) int { return strings.Compare(x.Name, y.Name) })
	return append(out, runtime...)
}

// checkSpawn says why spawning name with behaviour cannot be done, or nil:
// a name that is not a valid actor name, an unknown behaviour, a name in
// another virtual behaviour's namespace, or an actor of that name with
// another behaviour (registered, or spawned earlier in the same batch:
// pending maps those names to their behaviour).
func (c *Core) checkSpawn(ctx context.Context, name, behaviour string, pending map[string]string) error {
	if err := mailbox.CheckActorName(name); err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	if _, known := c.cfg.Behaviours[behaviour]; !known {
		return fmt.Errorf("spawn actor %q: %w %q (declare it under behaviours in the config)", name, ErrUnknownBehaviour, behaviour)
	}
	if owner := namespaceOwner(c.cfg, name); owner != "" && owner != behaviour {
		return fmt.Errorf("spawn actor %q with behaviour %q: the name belongs to virtual behaviour %q, which owns every name %s/KEY: spawn another name",
			name, behaviour, owner, owner)
	}
	if b, ok := pending[name]; ok && b != behaviour {
		return &mailbox.SpawnConflictError{Name: name, Existing: b, Requested: behaviour}
	}
	rec, err := c.store.Actor(ctx, name)
	switch {
	case errors.Is(err, mailbox.ErrUnknownActor):
		return nil
	case err != nil:
		return fmt.Errorf("spawn actor %q: %w", name, err)
	case rec.Behaviour != behaviour:
		return &mailbox.SpawnConflictError{Name: name, Existing: rec.Behaviour, Requested: behaviour}
	}
	return nil
}

// Spawn creates actor name, driven by behaviour, for the control API
// (`graft spawn`): it is registered durably, with init (when not empty)
// queued as its first message in the same write, and then started under
// its behaviour's supervisor, asynchronously like every start (Status
// shows it starting, then running). Spawning a name that exists with the
// same behaviour changes nothing and reports created false, so a retried
// request spawns once; with another behaviour it fails with an error
// matching mailbox.ErrSpawnConflict. A handler spawns with the SDK's
// ctx.Spawn instead, committed with its effect.
func (c *Core) Spawn(ctx context.Context, name, behaviour string, init []byte) (created bool, err error) {
	if err := c.checkSpawn(ctx, name, behaviour, nil); err != nil {
		return false, err
	}
	if len(init) > c.cfg.MaxMessageSize {
		return false, fmt.Errorf("spawn actor %q: init message: %w", name, &mailbox.TooLargeError{Actor: name, Size: len(init), Limit: c.cfg.MaxMessageSize})
	}
	if len(init) == 0 {
		init = nil
	}
	_, created, err = c.store.Spawn(ctx, mailbox.SpawnRequest{Name: name, Behaviour: behaviour, Init: init})
	if err != nil {
		return false, fmt.Errorf("spawn actor %q: %w", name, err)
	}
	return created, nil
}
