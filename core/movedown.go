package core

import (
	"context"
	"errors"
	"fmt"

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

// migrateDown moves st, which a module of want cannot read, down to
// want's schema with the version that wrote it (StateWriters), in a
// process of its own, and commits the result under epoch. One runs at a
// time: the actors a rollback left behind arrive together, and each
// takes one plugin start.
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
	cfg := c.moduleConfig(spec.Behaviour)
	cfg.Path, cfg.SHA256 = path, sha
	pool := newModulePool(spec.Behaviour+"/"+spec.Name+" (down-migration)", cfg, c.log)
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.stopTimeout(spec.Behaviour))
		_ = pool.close(stopCtx)
		cancel()
	}()
	inst, err := pool.get(ctx)
	if err != nil {
		return st, fmt.Errorf("start the version that wrote the state (%s): %w", path, err)
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
