package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// MaxMessageIDSize bounds a client-supplied message id, in bytes. An id is
// kept with its message and in the store's idempotency index for the whole
// idempotency window, so an unbounded one would let one client grow every
// message's footprint without limit; 256 bytes holds any UUID, hash or
// structured key a client needs.
const MaxMessageIDSize = 256

// ErrInvalidMessageID is wrapped by CheckMessageID's errors, so the control
// API can answer them as the caller's mistake.
var ErrInvalidMessageID = errors.New("invalid message id")

// ErrInvalidState is wrapped by the errors of a state repair whose new
// state cannot be used (empty, or at a schema the actor's module cannot
// read): nothing was changed.
var ErrInvalidState = errors.New("invalid state")

// RepairKind is the history kind of a state repair (ReplaceState,
// ResetState), beside the upgrade machinery's "upgrade" and "rollback".
const RepairKind = "repair"

// CheckMessageID returns an error if id cannot be a client's message id:
// over MaxMessageIDSize bytes. The empty id (none) is fine. The control API
// checks every id a client gives before anything is enqueued.
func CheckMessageID(id string) error {
	if len(id) > MaxMessageIDSize {
		return fmt.Errorf("message id %.40q... is %d bytes, over the %d-byte limit: use a shorter id (a UUID or a hash of the request): %w",
			id, len(id), MaxMessageIDSize, ErrInvalidMessageID)
	}
	return nil
}

// MaxStateSize is the largest state the core keeps for an actor, in bytes
// (Config.MaxStateSize): the control API sizes a state upload by it.
func (c *Core) MaxStateSize() int { return c.cfg.MaxStateSize }

// Repair is what a state repair did, for the operator who asked for it.
type Repair struct {
	// Actor and Behaviour name the repaired actor.
	Actor, Behaviour string
	// Old and New are the committed state before and after.
	Old, New mailbox.State
	// Record is the history record of the repair (with its id).
	Record mailbox.UpgradeRecord
}

// ReplaceState replaces the committed state of actor by data, for an
// operator repairing a state its handler cannot use. The actor is held
// between two commits (its batch in flight commits first; messages keep
// arriving durably), data is committed at schema (nil: the schema its
// module reads) and the module's code version, and the actor resumes from
// it. The repair is recorded in the history. data must be non-empty (to
// clear a state use ResetState) and within the state size limit.
func (c *Core) ReplaceState(ctx context.Context, actor string, data []byte, schema *uint32) (Repair, error) {
	if len(data) == 0 {
		return Repair{}, fmt.Errorf("replace the state of actor %q: the new state is empty: to clear it so that Init runs again, reset it instead: %w", actor, ErrInvalidState)
	}
	if len(data) > c.cfg.MaxStateSize {
		return Repair{}, fmt.Errorf("replace the state of actor %q: the new state is %d bytes, over the %d-byte state limit (limits.max_state_size): %w",
			actor, len(data), c.cfg.MaxStateSize, mailbox.ErrTooLarge)
	}
	return c.repair(ctx, actor, "replace state", func(old mailbox.State, mod *dynamic.Info) (mailbox.State, error) {
		next := mailbox.State{Schema: old.Schema, Module: old.Module, Data: data}
		if mod != nil {
			next.Schema, next.Module = mod.SchemaVersion, mod.CodeVersion
		}
		if schema != nil {
			next.Schema = *schema
		}
		if mod == nil && schema == nil && noState(old) {
			return next, fmt.Errorf("actor %q has no state yet and no module running to say which schema it reads: give the schema: %w", actor, ErrInvalidState)
		}
		if mod != nil && next.Schema != mod.SchemaVersion && !slices.Contains(mod.MigratesFrom, next.Schema) {
			return next, fmt.Errorf("module %s %s of actor %q reads schema %d (and migrates up from %v), not schema %d: give a state at schema %d: %w",
				mod.Behaviour, mod.CodeVersion, actor, mod.SchemaVersion, mod.MigratesFrom, next.Schema, mod.SchemaVersion, ErrInvalidState)
		}
		return next, nil
	})
}

// ResetState clears the committed state of actor, so that its next
// message runs the behaviour's Init as for a new actor. Like ReplaceState
// it holds the actor between two commits and records the repair in the
// history; the mailbox, replies and dead letters are kept.
func (c *Core) ResetState(ctx context.Context, actor string) (Repair, error) {
	return c.repair(ctx, actor, "reset state", func(mailbox.State, *dynamic.Info) (mailbox.State, error) {
		return mailbox.State{}, nil
	})
}

// repair holds actor, computes its new state with next (given the module
// serving it, or nil when none runs), commits it with the actor's epoch,
// releases the actor on it and records the repair.
func (c *Core) repair(ctx context.Context, actor, step string, next func(old mailbox.State, mod *dynamic.Info) (mailbox.State, error)) (Repair, error) {
	fail := func(err error) (Repair, error) { return Repair{}, fmt.Errorf("%s of actor %q: %w", step, actor, err) }
	rec, err := c.store.Actor(ctx, actor)
	if err != nil {
		return fail(err)
	}
	started := time.Now()
	h, err := c.holdForRepair(ctx, rec)
	if err != nil {
		return fail(err)
	}
	st, err := next(h.state, h.module)
	if err != nil {
		h.release(nil)
		return fail(err)
	}
	if err := c.store.Commit(ctx, mailbox.Commit{Actor: actor, Epoch: h.epoch, State: &st}); err != nil {
		h.release(nil)
		if errors.Is(err, mailbox.ErrFenced) {
			err = fmt.Errorf("the actor was started, or repaired by someone else, meanwhile; nothing was changed: try again: %w", err)
		}
		return fail(fmt.Errorf("commit the new state: %w", err))
	}
	h.release(&st)
	out := Repair{Actor: actor, Behaviour: rec.Behaviour, Old: h.state, New: st, Record: mailbox.UpgradeRecord{
		Behaviour: rec.Behaviour, Kind: RepairKind, From: describeState(h.state), To: describeState(st),
		Started: started.UTC(), Ended: time.Now().UTC(), Outcome: "completed",
		Steps: []mailbox.UpgradeStep{{Actor: actor, Step: step, Duration: time.Since(h.since)}},
	}}
	// The state is committed: record it even if the caller gave up.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	id, err := c.store.AppendHistory(hctx, out.Record)
	if err != nil {
		return out, fmt.Errorf("%s of actor %q: done, but recording it in the history failed: %w", step, actor, err)
	}
	out.Record.ID = id
	c.log.Info("actor state repaired by an operator", "actor", actor, "behaviour", rec.Behaviour, "repair", step,
		"from", out.Record.From, "to", out.Record.To, "history", id)
	return out, nil
}

// repairHold is an actor kept from taking batches during a repair: paused
// if it runs, else claimed in the store, so its epoch fences any
// incarnation that would still commit from the state before.
type repairHold struct {
	paused *Paused // nil for an actor that was not running
	state  mailbox.State
	epoch  uint64
	module *dynamic.Info // of the module that serves it, nil if none runs
	since  time.Time
}

// holdForRepair pauses the running actor of rec (waking it if it is
// passive), or claims it when it does not run, holding its name's lock
// meanwhile so that no wake or passivation races the hold.
func (c *Core) holdForRepair(ctx context.Context, rec mailbox.Actor) (*repairHold, error) {
	var h *repairHold
	err := c.withAwake(ctx, rec.Name, func(a *actor) error {
		var err error
		if a != nil {
			h, err = pauseForRepair(ctx, a)
		} else {
			h, err = c.claimForRepair(ctx, rec)
		}
		return err
	})
	return h, err
}

// pauseForRepair holds a running actor for a repair.
func pauseForRepair(ctx context.Context, a *actor) (*repairHold, error) {
	p, err := a.pause(ctx, nil)
	if err != nil {
		return nil, err
	}
	h := &repairHold{paused: p, state: normalState(p.State), epoch: p.Epoch, since: p.Since}
	if p.Module != nil {
		info := p.Module.Info()
		h.module = &info
	}
	return h, nil
}

// claimForRepair holds an actor that does not run (stopped, failed) for a
// repair: its claim fences any stale incarnation.
func (c *Core) claimForRepair(ctx context.Context, rec mailbox.Actor) (*repairHold, error) {
	since := time.Now()
	epoch, err := c.store.Claim(ctx, rec.Name)
	if err != nil {
		return nil, fmt.Errorf("claim the stopped actor: %w", err)
	}
	st, err := c.store.State(ctx, rec.Name)
	if err != nil {
		return nil, fmt.Errorf("read its committed state: %w", err)
	}
	h := &repairHold{state: normalState(st), epoch: epoch, since: since}
	binary, _ := c.binaryFor(rec.Behaviour, h.state)
	c.mu.RLock()
	pool := c.pools[rec.Behaviour+"\x00"+binary]
	c.mu.RUnlock()
	if pool != nil {
		if m := pool.current(); m != nil {
			info := m.Info()
			h.module = &info
		}
	}
	return h, nil
}

// release lets a paused actor take batches again, from st when it is not
// nil (committed by the caller with h's epoch). A stopped actor stays
// stopped: it reads its committed state when it starts.
func (h *repairHold) release(st *mailbox.State) {
	if h.paused != nil {
		h.paused.Resume(nil, st)
	}
}

// noState says whether st is no state at all: the actor's next message runs
// Init.
func noState(st mailbox.State) bool { return st.Module == "" && len(st.Data) == 0 }

// normalState is st with "no state" spelt one way (nil Data), whatever
// the store read back for a cleared state, so that a reset actor runs Init
// after a core restart as before it.
func normalState(st mailbox.State) mailbox.State {
	if noState(st) {
		return mailbox.State{}
	}
	return st
}

// describeState is st in a history record's From or To.
func describeState(st mailbox.State) string {
	if noState(st) {
		return "empty (Init runs next)"
	}
	s := fmt.Sprintf("schema %d, %d bytes", st.Schema, len(st.Data))
	if st.Module != "" {
		s += ", module " + st.Module
	}
	return s
}

// ErrStateUnreadable is the start error of an actor whose committed
// state the module this core would run cannot read: a newer schema than
// it knows (another core of a cluster upgraded the actor, say). The actor
// does not start, and its messages wait, rather than fail one by one
// into the dead letters for a reason that is none of theirs.
var ErrStateUnreadable = errors.New("the module cannot read the actor's committed state")

// readable checks that a module of info can read st: st is new (Init
// makes it), of the module's own schema, or one it migrates up from.
func readable(actor string, st mailbox.State, info dynamic.Info) error {
	if st.Module == "" && st.Schema == 0 && len(st.Data) == 0 {
		return nil
	}
	if st.Schema == info.SchemaVersion || slices.Contains(info.MigratesFrom, st.Schema) {
		return nil
	}
	return fmt.Errorf("actor %q's committed state is schema %d, written by %s %s; this core runs %s %s (schema %d, migrating up from %v): %w; upgrade this core's %s to a version that reads it, or roll the actor back",
		actor, st.Schema, info.Behaviour, st.Module, info.Behaviour, info.CodeVersion, info.SchemaVersion, info.MigratesFrom, ErrStateUnreadable, info.Behaviour)
}
