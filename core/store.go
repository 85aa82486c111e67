package core

import (
	"context"
	"fmt"

	"github.com/graft-host/graft/mailbox"
)

// Store returns a read-only view of the core's store, for observers
// (status, dead letters, state, history). It is read-only by type: the
// view has only mailbox.Reader's methods, and it is not the store itself,
// so not even a type assertion gets a write method back. Writes go through
// the core's own methods (Send, ReplaceState, RequeueDeadLetter, ...) and
// the upgrade hooks (Upgrades), which keep the core's invariants: one
// writer per actor, commits under the actor's epoch, the actor woken.
func (c *Core) Store() mailbox.Reader { return readOnlyStore{c.store} }

// readOnlyStore forwards mailbox.Reader to a store and nothing else. The
// store is a named field, not embedded, so that its write methods are not
// promoted.
type readOnlyStore struct{ s mailbox.Store }

func (r readOnlyStore) Actor(ctx context.Context, name string) (mailbox.Actor, error) {
	return r.s.Actor(ctx, name)
}

func (r readOnlyStore) Actors(ctx context.Context) ([]mailbox.Actor, error) { return r.s.Actors(ctx) }

func (r readOnlyStore) State(ctx context.Context, name string) (mailbox.State, error) {
	return r.s.State(ctx, name)
}

func (r readOnlyStore) Stats(name string) (mailbox.Stats, error) { return r.s.Stats(name) }

func (r readOnlyStore) DeadLetters(ctx context.Context, actor string) ([]mailbox.DeadLetter, error) {
	return r.s.DeadLetters(ctx, actor)
}

func (r readOnlyStore) ListHistory(ctx context.Context) ([]mailbox.UpgradeRecord, error) {
	return r.s.ListHistory(ctx)
}

func (r readOnlyStore) PendingTimers(ctx context.Context, owner string) ([]mailbox.Timer, error) {
	return r.s.PendingTimers(ctx, owner)
}

func (r readOnlyStore) Handled(ctx context.Context, actor string) ([]mailbox.Handled, error) {
	return r.s.Handled(ctx, actor)
}

func (r readOnlyStore) Read(ctx context.Context, actor string, after uint64, max int) ([]mailbox.Message, error) {
	return r.s.Read(ctx, actor, after, max)
}

// RequeueDeadLetter moves actor's dead letter seq back into its mailbox as
// a new message (new sequence number, same id, sender and payload, attempts
// reset; see mailbox.Queues.Requeue) and returns its receipt. The store's
// notification wakes the actor, which takes it like any new message. It is
// an operator's retry (`graft deadletters --retry`), made through the core
// rather than the store, like every write.
func (c *Core) RequeueDeadLetter(ctx context.Context, actor string, seq uint64) (mailbox.Receipt, error) {
	rc, err := c.store.Requeue(ctx, actor, seq)
	if err != nil {
		return rc, fmt.Errorf("retry dead letter %d of actor %q: %w", seq, actor, err)
	}
	return rc, nil
}
