package pebblestore

import (
	"context"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

// txn is one engine batch and what it holds in memory until the batch is
// durable or abandoned: sequence numbers reserved in mailboxes, actors it
// creates, timers it sets, cancels or fires, dead-letter counts it moves,
// dead letters it requeues. Every write that enqueues a message (Enqueue,
// Commit, Requeue, Spawn, FireDue) or claims a timer (Schedule, Unschedule,
// Remove) goes through one, so that all of it is settled the same way, in
// one place (end), whether the batch commits or not.
type txn struct {
	s         *Store
	b         *pebble.Batch
	writes    []outgoingWrite // reservations, finished by end
	creations []*creation     // actors this batch creates (spawn.go)
	timerOps  []timerOp       // timers this batch sets, cancels or fires
	dead      []deadChange    // dead-letter counters to move on success
	created   []*creation     // durable creations, for Options.Created
	requeues  []requeueClaim  // dead letters this batch requeues (deadletter.go)
}

// requeueClaim is a dead letter a txn requeues: no other write may requeue
// it until the txn ends.
type requeueClaim struct {
	a    *actor
	seq  uint64
	done chan struct{} // closed when released
}

// deadChange moves an actor's dead-letter counter once the batch is
// durable.
type deadChange struct {
	a     *actor
	delta int
}

func (s *Store) newTxn() *txn { return &txn{s: s, b: s.db.NewBatch()} }

// send reserves the next sequence number of a for m and adds m to the
// batch, through putMessage, so the recent cache gets its record when end
// finishes the reservation. A non-nil receipt means m's id is known (a
// duplicate): nothing was added. digest is checked as reserve documents.
func (t *txn) send(ctx context.Context, a *actor, m *mailbox.Message, digest []byte) (uint64, *mailbox.Receipt, error) {
	seq, p, dup, err := t.s.reserve(ctx, t, a, m.ID, digest)
	if err != nil || dup != nil {
		return 0, dup, err
	}
	return seq, nil, t.put(a, seq, p, m)
}

// put adds m at seq, a sequence number of a the caller reserved for this
// batch, and takes over the reservation.
func (t *txn) put(a *actor, seq uint64, p *pendingID, m *mailbox.Message) error {
	w := outgoingWrite{a: a, seq: seq, id: m.ID, p: p}
	var err error
	w.record, err = t.s.putMessage(t.b, a, seq, m)
	t.writes = append(t.writes, w)
	return err
}

// end settles everything the batch holds: err nil means it is durable.
// Created actors become visible, then the reservations finish (readers
// see the messages, Notify runs), then timers take their new state. The
// batch is closed; Store.announce later reports the created actors.
func (t *txn) end(err error) {
	s := t.s
	if len(t.creations) > 0 {
		s.settleCreations(t.creations, err)
	}
	if err == nil {
		for _, d := range t.dead {
			d.a.mu.Lock()
			d.a.dead = addDead(d.a.dead, d.delta)
			d.a.mu.Unlock()
		}
	}
	for _, w := range t.writes {
		s.finishWrite(w.a, w.seq, w.id, w.p, w.record, err)
	}
	// After the messages are readable: a cancel that waited for a firing
	// then finds the fired message in its target's mailbox.
	if len(t.timerOps) > 0 {
		s.timers.settle(t.timerOps, err)
	}
	// After the batch is durable: a requeue that waited for this one then
	// finds the dead letter gone.
	for _, c := range t.requeues {
		releaseDeadLetter(c)
	}
	if err == nil {
		t.created = t.creations
	}
	_ = t.b.Close()
}

// addDead moves a dead-letter count by delta, never below zero: a count
// that wrapped around would report billions of dead letters.
func addDead(n uint64, delta int) uint64 {
	if delta < 0 && uint64(-delta) > n {
		return 0
	}
	return uint64(int64(n) + int64(delta))
}

// announce calls Options.Created for every actor tx created. Callers defer
// it before Store.enter, so it runs once the call has left the store:
// Created may call the store.
func (s *Store) announce(tx *txn) {
	if tx == nil || s.opts.Created == nil {
		return
	}
	for _, c := range tx.created {
		s.opts.Created(c.a.name, c.behaviour)
	}
}
