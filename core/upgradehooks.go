package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// UpgradeHooks are the core's hooks for the upgrade machinery (package
// upgrade, through its Host interface): load a module version beside the
// running one, hold an actor between two commits, commit its migrated
// state under the pause's epoch, resume it on the new version, stop the
// old version, record the upgrade. Get them with Core.Upgrades.
//
// They are kept off Core's own method set because, unlike Send, Call,
// Status or StopActor, they do not keep the runtime's invariants by
// themselves; the upgrade protocol's order does (see the package doc, "The
// swap point"): Pause, then commit states with the pause's epoch, then
// Resume exactly once on a module that reads what was committed, then
// UnloadModule once no actor needs the old version. Out of that order they
// stall an actor (a pause never resumed takes no batch again), make its
// memory and the store disagree (a state committed without the pause, or
// resumed with another state), fail every message (a resume on a module
// that cannot read the state), or lose the way back (the old version
// unloaded while an upgrade may still move back onto it).
type UpgradeHooks struct{ c *Core }

// Upgrades returns the core's upgrade hooks, for the upgrade machinery
// alone (host hands them to upgrade.Manager.Attach). Read the
// UpgradeHooks doc before using them anywhere else.
func (c *Core) Upgrades() *UpgradeHooks { return &UpgradeHooks{c: c} }

// LoadedModule is a module version that actors can be moved onto: the
// upgrade machinery loads the new version with UpgradeHooks.LoadModule,
// then Pauses each actor and Resumes it on the handle.
type LoadedModule struct {
	pool *modulePool
}

// Module returns the handle's running module, starting it if needed.
func (h *LoadedModule) Module(ctx context.Context) (*dynamic.Instance, error) { return h.pool.get(ctx) }

// Close stops the handle's module; actors still on it get errors.
func (h *LoadedModule) Close(ctx context.Context) error { return h.pool.close(ctx) }

// LoadModule starts behaviour's plugin from binary (handshake and
// behaviour name checked) beside the running version, without moving any
// actor onto it. Loading a binary already loaded returns the same shared
// module.
func (h *UpgradeHooks) LoadModule(ctx context.Context, behaviour, binary, sha256 string) (*LoadedModule, error) {
	c := h.c
	if _, ok := c.cfg.Behaviours[behaviour]; !ok {
		return nil, fmt.Errorf("load module: unknown behaviour %q", behaviour)
	}
	pool := c.sharedPool(behaviour, binary, sha256)
	if pool == nil {
		return nil, fmt.Errorf("load %s module from %s: %w", behaviour, binary, ErrShutdown)
	}
	if _, err := pool.get(ctx); err != nil {
		c.dropPool(pool)
		var se *dynamic.StartError
		if errors.As(err, &se) { // it names the binary, as its user knows it
			return nil, fmt.Errorf("load %s module: %w", behaviour, c.nameSource(behaviour, err))
		}
		return nil, fmt.Errorf("load %s module from %s: %w", behaviour, binary, err)
	}
	return &LoadedModule{pool: pool}, nil
}

// Pins is the core's memo of the plugin binaries already hashed against
// their pins: the upgrade cache vouches for the binaries it writes, so
// that loading one does not hash it again.
func (h *UpgradeHooks) Pins() *dynamic.Pins { return h.c.pins }

// UnloadModule stops the shared module running binary for behaviour once no
// running actor uses it; it reports whether it did.
func (h *UpgradeHooks) UnloadModule(ctx context.Context, behaviour, binary string) (bool, error) {
	c := h.c
	key := behaviour + "\x00" + binary
	c.mu.Lock()
	p := c.pools[key]
	if p == nil {
		c.mu.Unlock()
		return true, nil
	}
	for _, a := range c.actors {
		a.mu.Lock()
		inUse := a.pool == p
		a.mu.Unlock()
		if inUse {
			c.mu.Unlock()
			return false, nil
		}
	}
	delete(c.pools, key)
	c.mu.Unlock()
	return true, p.close(ctx)
}

// dropPool forgets a shared pool that failed to start.
func (c *Core) dropPool(p *modulePool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, q := range c.pools {
		if q == p {
			delete(c.pools, k)
		}
	}
}

// ActorsOf lists the actors of behaviour the core supervises: the
// configured ones in config order, then those made at run time (spawned,
// virtual) by name, so that an upgrade moves them too.
func (h *UpgradeHooks) ActorsOf(behaviour string) []string {
	c := h.c
	c.mu.RLock()
	actors := c.behaviourActors(behaviour)
	c.mu.RUnlock()
	out := make([]string, 0, len(actors))
	for _, a := range actors {
		if c.upgradable(a.Name) {
			out = append(out, a.Name)
		}
	}
	return out
}

// State returns the actor's committed state, as the store holds it.
func (h *UpgradeHooks) State(ctx context.Context, actor string) (mailbox.State, error) {
	return h.c.store.State(ctx, actor)
}

// ErrNotRunning is Pause's error for an actor that does not run now
// (stopped, starting, restarting, or handed to another core of a
// cluster): an upgrade cannot migrate it at this instant, and may try
// again.
var ErrNotRunning = errors.New("it is not running")

// Pause holds the actor between two commits (its batch in flight commits
// first, bounded by ctx) and returns its committed state; messages keep
// arriving durably. Resume the returned Paused exactly once.
func (h *UpgradeHooks) Pause(ctx context.Context, name string) (*Paused, error) {
	return h.PauseAhead(ctx, name, nil)
}

// PauseAhead is Pause, and tells ahead (if not nil) the state that the
// actor's batch in flight is committing as soon as its Handle returned it,
// so that the caller can migrate that state while the commit syncs rather
// than after the pause. ahead is called at most once, before PauseAhead
// returns, and must return at once (it may run on the actor's goroutine):
// start the work on a goroutine of its own. It is only a hint: if that
// commit fails, the Paused's State differs from it.
func (h *UpgradeHooks) PauseAhead(ctx context.Context, name string, ahead func(mailbox.State)) (*Paused, error) {
	var p *Paused
	// A passive actor is woken, so that it migrates too; the name's lock
	// keeps a passivation from racing the pause.
	err := h.c.withAwake(ctx, name, func(a *actor) error {
		if a == nil {
			return ErrNotRunning
		}
		var err error
		p, err = a.pause(ctx, ahead)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pause actor %q: %w", name, err)
	}
	return p, nil
}

// CommitStates commits the new states of paused actors in one store
// transaction, each with its pause's epoch (Paused.Epoch), so a stale
// incarnation can never overwrite them. It takes state-only commits: one
// that acks, sends, replies or dead-letters anything is refused, since
// only the actor's own loop may do that. Resume each actor with the state
// committed for it.
func (h *UpgradeHooks) CommitStates(ctx context.Context, commits ...mailbox.Commit) error {
	for _, cm := range commits {
		if cm.Through != 0 || len(cm.Outgoing) > 0 || len(cm.Replies) > 0 || len(cm.DeadLetters) > 0 {
			return fmt.Errorf("commit the state of actor %q: an upgrade commits states only, and this commit acks, sends, replies or dead-letters messages", cm.Actor)
		}
	}
	return h.c.store.Commit(ctx, commits...)
}

// DeadLetters lists actor's dead letters: a canary rolled back requeues
// those its bake made.
func (h *UpgradeHooks) DeadLetters(ctx context.Context, actor string) ([]mailbox.DeadLetter, error) {
	return h.c.store.DeadLetters(ctx, actor)
}

// RequeueDeadLetter is Core.RequeueDeadLetter.
func (h *UpgradeHooks) RequeueDeadLetter(ctx context.Context, actor string, seq uint64) (mailbox.Receipt, error) {
	return h.c.RequeueDeadLetter(ctx, actor, seq)
}

// AppendHistory stores the upgrade record rec and returns its id.
func (h *UpgradeHooks) AppendHistory(ctx context.Context, rec mailbox.UpgradeRecord) (uint64, error) {
	return h.c.store.AppendHistory(ctx, rec)
}

// Swap is the upgrade's swap point for one actor: pause it, run fn over its
// committed state (fn migrates it with the module `to` and returns the new
// state, or an error), commit the new state and module version with the
// actor's epoch, and resume it on `to`. If fn or the commit fails the actor
// resumes on its old module with its state untouched. It returns how long
// the actor was paused. It is the whole protocol for one actor, in order.
func (h *UpgradeHooks) Swap(ctx context.Context, name string, to *LoadedModule, fn func(ctx context.Context, st mailbox.State, next *dynamic.Instance) (mailbox.State, error)) (time.Duration, error) {
	p, err := h.Pause(ctx, name)
	if err != nil {
		return 0, err
	}
	next, err := to.Module(ctx)
	if err != nil {
		p.Resume(nil, nil)
		return time.Since(p.Since), err
	}
	st, err := fn(ctx, p.State, next)
	if err != nil {
		p.Resume(nil, nil)
		return time.Since(p.Since), fmt.Errorf("swap actor %q: %w", name, err)
	}
	if err := h.CommitStates(ctx, mailbox.Commit{Actor: name, Epoch: p.Epoch, State: &st}); err != nil {
		p.Resume(nil, nil)
		return time.Since(p.Since), fmt.Errorf("swap actor %q: commit migrated state: %w", name, err)
	}
	p.Resume(to, &st)
	return time.Since(p.Since), nil
}
