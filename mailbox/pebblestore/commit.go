package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

// commitPlan is one mailbox.Commit after validation.
type commitPlan struct {
	c        *mailbox.Commit
	a        *actor
	acked    uint64   // ack watermark before this commit
	evictTo  uint64   // forget idempotency ids through this seq (0: none)
	evictLow uint64   // ...starting after this one
	failed   []uint64 // acked messages with a failure record
}

// outgoingWrite is a message reserved in a mailbox by a txn.
type outgoingWrite struct {
	a   *actor
	seq uint64
	id  string
	p   *pendingID
	// record is the message's encoded record, for the recent cache.
	record []byte
}

// Commit implements mailbox.Queues; see the package doc for the protocol.
// Everything is validated before anything is written, the whole call is one
// engine batch, and the in-memory counters move only after the batch is
// durable. Its steps run in an order that keeps concurrent writers from
// waiting on each other in a cycle: timers first (a cancel may wait for a
// timer being fired), then acks and states, then every actor it spawns or
// sends to is resolved in name order, and only then are sequence numbers
// reserved.
func (s *Store) Commit(ctx context.Context, commits ...mailbox.Commit) (err error) {
	var tx *txn
	defer func() { s.announce(tx) }()
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if len(commits) == 0 {
		return nil
	}
	plans := make([]commitPlan, 0, len(commits))
	defer func() {
		for _, p := range plans {
			p.a.mu.Lock()
			p.a.inCommit = false
			if p.a.removed {
				p.a.cond.Broadcast() // Remove waits for the commit
			}
			p.a.mu.Unlock()
		}
	}()
	for i := range commits {
		p, err := s.plan(&commits[i])
		if err != nil {
			return err
		}
		plans = append(plans, p)
	}
	tx = s.newTxn()
	defer func() { tx.end(err) }()
	for i := range plans {
		if err := s.writeTimers(ctx, tx, &plans[i]); err != nil {
			return err
		}
	}
	for i := range plans {
		if err := s.writePlan(tx.b, &plans[i]); err != nil {
			return err
		}
	}
	if err := s.writeSends(ctx, tx, plans); err != nil {
		return err
	}
	opts := pebble.NoSync
	for i := range commits {
		if !commits[i].Lazy {
			opts = s.writeOpts
			break
		}
	}
	if err := s.apply(tx.b, opts, tierCommit); err != nil {
		return fmt.Errorf("commit for actor %q: %w", commits[0].Actor, err)
	}
	for i := range plans {
		s.applyPlan(&plans[i])
	}
	return nil
}

// plan validates one commit against the actor's counters and marks the
// actor as committing, so two concurrent commits for one actor are refused
// rather than interleaved.
func (s *Store) plan(c *mailbox.Commit) (commitPlan, error) {
	a, err := s.lookup(c.Actor)
	if err != nil {
		return commitPlan{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.removed:
		return commitPlan{}, fmt.Errorf("commit for actor %q: %w", c.Actor, mailbox.ErrUnknownActor)
	case a.inCommit:
		return commitPlan{}, fmt.Errorf("commit for actor %q: another commit for it is in progress (one writer per actor)", c.Actor)
	case c.Epoch != a.rec.Epoch:
		return commitPlan{}, fmt.Errorf("commit for actor %q with epoch %d, current epoch is %d: %w", c.Actor, c.Epoch, a.rec.Epoch, mailbox.ErrFenced)
	case c.Through != 0 && c.Through <= a.acked:
		return commitPlan{}, fmt.Errorf("commit for actor %q acks through %d, already acked through %d: %w", c.Actor, c.Through, a.acked, mailbox.ErrAlreadyAcked)
	case c.Through > a.visible:
		return commitPlan{}, fmt.Errorf("commit for actor %q acks through %d, the last message is %d: %w", c.Actor, c.Through, a.visible, mailbox.ErrBeyondEnd)
	}
	for _, d := range c.DeadLetters {
		if d.Seq <= a.acked || d.Seq > c.Through {
			return commitPlan{}, fmt.Errorf("commit for actor %q dead-letters message %d, outside the batch %d..%d it acks: %w", c.Actor, d.Seq, a.acked+1, c.Through, mailbox.ErrUnknownMessage)
		}
	}
	if err := mailbox.CheckCommitRequests(c, s.opts.MaxMessageSize); err != nil {
		return commitPlan{}, err
	}
	p := commitPlan{c: c, a: a, acked: a.acked}
	if c.Through > 0 {
		p.failed = a.failuresIn(a.acked+1, c.Through)
	}
	if c.Through > 0 && a.nextSeq-1 > s.opts.IdempotencyWindow {
		limit := min(c.Through, a.nextSeq-1-s.opts.IdempotencyWindow)
		if limit > a.evicted {
			p.evictLow, p.evictTo = a.evicted, limit
		}
	}
	a.inCommit = true
	return p, nil
}

// writePlan adds one actor's ack, dead letters, state, replies and id
// evictions to the batch.
func (s *Store) writePlan(b *pebble.Batch, p *commitPlan) error {
	c, a := p.c, p.a
	fail := func(err error) error { return fmt.Errorf("commit for actor %q: %w", c.Actor, err) }
	for _, d := range c.DeadLetters {
		if err := s.writeDeadLetter(b, a, d); err != nil {
			return fail(err)
		}
	}
	if c.Through > 0 {
		if err := deleteSeqs(b, prefixQueue, a.id, p.acked+1, c.Through); err != nil {
			return fail(err)
		}
		for _, seq := range p.failed {
			if err := b.Delete(seqKey(prefixFailure, a.id, seq), nil); err != nil {
				return fail(err)
			}
		}
		if err := b.Set(idKey(prefixCursor, a.id), u64(c.Through), nil); err != nil {
			return fail(err)
		}
	}
	if c.State != nil {
		a.stateStored.Store(true)
		if err := b.Set(idKey(prefixState, a.id), encodeState(c.State), nil); err != nil {
			return fail(err)
		}
	}
	if c.Handled != nil && c.KeepHandled > 0 && c.Through > 0 {
		if err := writeHandled(b, a.id, c); err != nil {
			return fail(err)
		}
	}
	for _, r := range c.Replies {
		o := outcome{kind: mailbox.OutcomeReplied, payload: r.Payload}
		if r.Refusal != "" {
			o = outcome{kind: mailbox.OutcomeRefused, payload: []byte(r.Refusal)}
		}
		v := encodeOutcome(o)
		if err := b.Set(strKey(prefixOutcome, a.id, r.MessageID), v, nil); err != nil {
			return fail(err)
		}
	}
	if p.evictTo > 0 {
		if err := s.evictIDs(b, a, p.evictLow, p.evictTo); err != nil {
			return fail(err)
		}
	}
	return nil
}

// rangeDeleteAbove is the ack size from which a range tombstone is cheaper
// than point tombstones. Below it, point deletes: the engine rebuilds the
// fragments of every range tombstone in its memtable for each new iterator,
// so one range tombstone per commit made every Read cost O(commits).
const rangeDeleteAbove = 4096

// deleteSeqs deletes the keys [prefix id lo..hi].
func deleteSeqs(b *pebble.Batch, prefix byte, id, lo, hi uint64) error {
	if hi-lo+1 > rangeDeleteAbove {
		return b.DeleteRange(seqKey(prefix, id, lo), seqKey(prefix, id, hi+1), nil)
	}
	for seq := lo; seq <= hi; seq++ {
		if err := b.Delete(seqKey(prefix, id, seq), nil); err != nil {
			return err
		}
	}
	return nil
}

// writeDeadLetter copies a pending message, with its attempts and the
// reason, into the dead-letter area, and records the outcome under its id.
func (s *Store) writeDeadLetter(b *pebble.Batch, a *actor, d mailbox.DeadLetterRequest) error {
	v, c, err := s.db.Get(seqKey(prefixQueue, a.id, d.Seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("dead-letter message %d: %w", d.Seq, mailbox.ErrUnknownMessage)
	}
	if err != nil {
		return fmt.Errorf("dead-letter message %d: %w", d.Seq, err)
	}
	m, err := decodeMessage(d.Seq, v)
	_ = c.Close()
	if err != nil {
		return &mailbox.CorruptError{Path: s.path, Err: err}
	}
	f, err := s.getFailure(a, d.Seq)
	if err != nil {
		return err
	}
	m.Attempts, m.LastError = f.attempts, d.Error
	rec, err := encodeDeadLetter(mailbox.DeadLetter{Message: m, DeadAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := b.Set(seqKey(prefixDead, a.id, d.Seq), rec, nil); err != nil {
		return err
	}
	if m.ID != "" {
		o := encodeOutcome(outcome{kind: mailbox.OutcomeDeadLettered, payload: []byte(d.Error)})
		return b.Set(strKey(prefixOutcome, a.id, m.ID), o, nil)
	}
	return nil
}

// evictIDs forgets the idempotency ids of messages (low, to]: those older
// than the window and already acked.
func (s *Store) evictIDs(b *pebble.Batch, a *actor, low, to uint64) error {
	lo, hi := seqKey(prefixIDOrder, a.id, low+1), seqKey(prefixIDOrder, a.id, to+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		id := string(it.Value())
		if err := b.Delete(strKey(prefixIDIndex, a.id, id), nil); err != nil {
			_ = it.Close()
			return err
		}
		if err := b.Delete(strKey(prefixOutcome, a.id, id), nil); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	return b.DeleteRange(lo, hi, nil)
}

// writeSends adds the commits' spawns (with their Init messages) and
// outgoing messages to the batch. Every name spawned or sent to is
// resolved first, in name order, creating spawned and virtual actors
// (spawn.go); then the Init messages are queued, then the outgoing ones,
// so a spawned actor's Init comes before anything sent to it. The
// reservations are tx's, finished by tx.end whether the batch commits or
// not.
func (s *Store) writeSends(ctx context.Context, tx *txn, plans []commitPlan) error {
	spawns := map[string]*mailbox.SpawnRequest{}
	var names []string
	for _, p := range plans {
		for i := range p.c.Spawns {
			sp := &p.c.Spawns[i]
			if spawns[sp.Name] == nil {
				spawns[sp.Name] = sp
			}
			names = append(names, sp.Name)
		}
		for _, o := range p.c.Outgoing {
			names = append(names, o.To)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	actors := make(map[string]*actor, len(names))
	created := make(map[string]bool)
	for _, name := range slices.Compact(names) {
		a, made, err := s.resolve(ctx, tx, name, spawns[name])
		if err != nil {
			return fmt.Errorf("commit for actor %q: %w", plans[0].c.Actor, err)
		}
		actors[name], created[name] = a, made
	}
	now := time.Now()
	for _, p := range plans {
		for i := range p.c.Spawns {
			sp := &p.c.Spawns[i]
			a := actors[sp.Name]
			if err := spawnConflict(a, sp); err != nil {
				return fmt.Errorf("commit for actor %q: %w", p.c.Actor, err)
			}
			if !created[sp.Name] || sp.Init == nil {
				continue
			}
			created[sp.Name] = false // one Init per actor
			m := mailbox.Message{Sender: p.c.Actor, Payload: sp.Init, EnqueuedAt: now}
			if _, _, err := tx.send(ctx, a, &m, nil); err != nil {
				return fmt.Errorf("commit for actor %q spawns %q: %w", p.c.Actor, sp.Name, err)
			}
		}
	}
	for _, p := range plans {
		for i := range p.c.Outgoing {
			o := &p.c.Outgoing[i]
			to := actors[o.To]
			if to == nil {
				return fmt.Errorf("commit for actor %q sends to %q: %w", p.c.Actor, o.To, mailbox.UnknownActorError(o.To))
			}
			m := o.Message
			m.EnqueuedAt = now
			// Handlers' sends carry no digest: a redelivered batch resends them.
			if _, _, err := tx.send(ctx, to, &m, nil); err != nil {
				return fmt.Errorf("commit for actor %q sends to %q: %w", p.c.Actor, o.To, err)
			}
		}
	}
	return nil
}

// apply moves the in-memory counters after the batch is durable.
func (s *Store) applyPlan(p *commitPlan) {
	c, a := p.c, p.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.Through > 0 {
		s.forgetThrough(a, p.acked, c.Through)
		a.acked = c.Through
		for _, seq := range a.failuresIn(p.acked+1, c.Through) {
			delete(a.failures, seq)
		}
	}
	a.dead += uint64(len(c.DeadLetters))
	if c.State != nil {
		a.module, a.schema = c.State.Module, c.State.Schema
	}
	if p.evictTo > a.evicted {
		a.evicted = p.evictTo
	}
}

// failuresIn lists the seqs in [lo, hi] with recorded failures. Callers
// hold a.mu.
func (a *actor) failuresIn(lo, hi uint64) []uint64 {
	var out []uint64
	for seq := range a.failures {
		if seq >= lo && seq <= hi {
			out = append(out, seq)
		}
	}
	return out
}
