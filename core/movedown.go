package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// StateWriters is what a ModuleSelector may offer besides Binary: the
// binary of the version that wrote a committed state which the module the
// core would run cannot read, so that the core moves the state down with
// that version's own down-migration instead of leaving the actor waiting.
//
// In a cluster this is how an actor caught by a rollback in flight runs
// again: member A rolled back from v2 to v1 while member B, not yet,
// still ran the actor on v2; the actor then reaches A (B died, or a
// rebalance) with a v2 state that v1 cannot read. A starts v2 beside v1
// for a moment, migrates the state down, commits it under the actor's
// epoch and runs the actor on v1, as B's own rollback would have.
//
//	start ─▶ Claim ─▶ State (v2) ─▶ v1 cannot read it
//	      ─▶ WrittenBy(v2) ─▶ v2 in a process of its own: Migrate(v2 → v1)
//	      ─▶ Commit(state v1, epoch) ─▶ run on v1
//
// Migrations are deterministic (the dry run checks down(up(s)) == s), so
// a core killed in the middle does it again on its next start.
type StateWriters interface {
	// WrittenBy returns the path and sha256 of a binary of behaviour
	// whose code version and schema are st's, or an error that says why
	// it has none (ErrNoStateWriter).
	WrittenBy(ctx context.Context, behaviour string, st mailbox.State) (path, sha256 string, err error)
}

// ErrNoStateWriter is WrittenBy's error when no binary of the version
// that wrote a state is known.
var ErrNoStateWriter = errors.New("no binary of the version that wrote the state is known here")

// downIdle is how long the module down-migrations ran on is kept after
// the last: the actors a rollback left behind arrive together (a member
// died with its share), and share one process.
const downIdle = 5 * time.Second

// downModule is the module process of a version that down-migrations run
// on (movedown.go). The downMigrations token guards it.
type downModule struct {
	key  string // behaviour, NUL, binary path
	pool *modulePool
	idle *time.Timer
}

// migrateDown moves st, which a module of want cannot read, down to
// want's schema with the version that wrote it (StateWriters), in a
// process of its own kept for downIdle after the last use, and commits
// the result under epoch. One runs at a time.
func (c *Core) migrateDown(ctx context.Context, spec ActorConfig, epoch uint64, st mailbox.State, want dynamic.Info) (mailbox.State, error) {
	w, ok := c.cfg.Modules.(StateWriters)
	if !ok {
		return st, ErrNoStateWriter
	}
	path, sha, err := w.WrittenBy(ctx, spec.Behaviour, st)
	if err != nil {
		return st, err
	}
	select {
	case c.downMigrations <- struct{}{}:
	case <-ctx.Done():
		return st, fmt.Errorf("wait to migrate the state down: %w", ctx.Err())
	}
	defer func() { <-c.downMigrations }()
	inst, err := c.downModuleFor(ctx, spec.Behaviour, path, sha)
	if err != nil {
		return st, err
	}
	if got := inst.Info(); got.CodeVersion != st.Module || got.SchemaVersion != st.Schema {
		return st, fmt.Errorf("the binary given for %s %s (schema %d) is %s (schema %d)", spec.Behaviour, st.Module, st.Schema, got.CodeVersion, got.SchemaVersion)
	}
	mctx, cancel := context.WithTimeout(ctx, c.handleTimeout(spec.Behaviour))
	out, err := inst.Migrate(mctx, spec.Name, dynamic.State{Schema: st.Schema, Data: st.Data}, want.SchemaVersion)
	cancel()
	if err != nil {
		return st, fmt.Errorf("migrate the state down from %s to %s: %w", st.Module, want.CodeVersion, err)
	}
	down := mailbox.State{Schema: out.Schema, Module: want.CodeVersion, Data: out.Data}
	if err := readable(spec.Name, down, want); err != nil {
		return st, fmt.Errorf("after the down-migration from %s: %w", st.Module, err)
	}
	if err := c.store.Commit(ctx, mailbox.Commit{Actor: spec.Name, Epoch: epoch, State: &down}); err != nil {
		return st, fmt.Errorf("commit the state migrated down: %w", err)
	}
	c.log.Info("an actor's state was written by a newer version than this core runs; migrated it down with that version",
		"actor", spec.Name, "behaviour", spec.Behaviour, "from", st.Module, "to", want.CodeVersion)
	return down, nil
}

// downModuleFor is the running module of binary path for behaviour's
// down-migrations: the one kept from the last, or a new one (the last
// stopped). The caller holds the downMigrations token.
func (c *Core) downModuleFor(ctx context.Context, behaviour, path, sha string) (*dynamic.Instance, error) {
	key := behaviour + "\x00" + path
	d := c.down
	if d != nil && d.key != key {
		c.stopDownModule(ctx)
		d = nil
	}
	if d == nil {
		cfg := c.moduleConfig(behaviour)
		cfg.Path, cfg.SHA256 = path, sha
		d = &downModule{key: key, pool: newModulePool(behaviour+" (down-migrations)", cfg, c.log)}
		c.down = d
	}
	if d.idle != nil {
		d.idle.Stop()
	}
	d.idle = time.AfterFunc(downIdle, func() { c.idleDownModule(d) })
	inst, err := d.pool.get(ctx)
	if err != nil {
		c.stopDownModule(ctx)
		return nil, fmt.Errorf("start the version that wrote the state (%s): %w", path, err)
	}
	return inst, nil
}

// idleDownModule stops d once it has been idle for downIdle, unless a
// newer one replaced it or it is in use (it is tried again then).
func (c *Core) idleDownModule(d *downModule) {
	select {
	case c.downMigrations <- struct{}{}:
	default:
		d.idle.Reset(downIdle) // a migration runs: it restarts the clock
		return
	}
	defer func() { <-c.downMigrations }()
	if c.down == d {
		c.stopDownModule(context.Background())
	}
}

// stopDownModule stops the down-migrations' module, if one runs, within
// the behaviour's stop timeout. The caller holds the token (or the core
// is shutting down and no start runs).
func (c *Core) stopDownModule(ctx context.Context) {
	d := c.down
	if d == nil {
		return
	}
	c.down = nil
	if d.idle != nil {
		d.idle.Stop()
	}
	behaviour, _, _ := strings.Cut(d.key, "\x00")
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.stopTimeout(behaviour))
	defer cancel()
	_ = d.pool.close(stopCtx)
}

// shutdownDownModule stops the down-migrations' module at the core's
// shutdown: with the token once the start that holds it ends, or, if ctx
// ends first, without it (no plugin outlives the core).
func (c *Core) shutdownDownModule(ctx context.Context) {
	select {
	case c.downMigrations <- struct{}{}:
		defer func() { <-c.downMigrations }()
	case <-ctx.Done():
	}
	c.stopDownModule(ctx)
}
