package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

// Durable timers. A timer is two keys, written and deleted together:
//
//	T due owner timerid   the timer (id, owner name, target, due, payload);
//	                      due first, so the keys sort in firing order
//	t owner timerid       its due time: the owner index, for a set's
//	                      "is it pending" check, cancel, PendingTimers and
//	                      Remove, each a point lookup or a prefix scan
//
// A commit sets and cancels its actor's timers in its own batch; FireDue
// deletes due timers and enqueues their messages in one batch. The
// in-memory index (timerindex.go) says which timers are due without
// reading the disk, and keeps those writers off each other's timers.

// writeTimers adds a commit's timer sets and cancels to the batch and
// claims their index entries for tx. Cancels count first: a timer set and
// cancelled in one commit is not set (the commit's cancels apply after its
// sets). It may wait for a timer being fired, so Commit calls it before it
// creates or reserves anything.
func (s *Store) writeTimers(ctx context.Context, tx *txn, p *commitPlan) error {
	c, a := p.c, p.a
	fail := func(err error) error { return fmt.Errorf("commit for actor %q: %w", c.Actor, err) }
	var cancelled map[string]bool
	for _, id := range c.CancelTimers {
		if cancelled[id] {
			continue
		}
		if cancelled == nil {
			cancelled = make(map[string]bool, len(c.CancelTimers))
		}
		cancelled[id] = true
		e, err := s.timers.startCancel(ctx, a.id, id)
		if err != nil {
			return fail(err)
		}
		if e == nil {
			continue // unknown or fired: a no-op
		}
		tx.timerOps = append(tx.timerOps, timerOp{e: e, kind: opCancel})
		if err := deleteTimer(tx.b, e.due, a.id, id); err != nil {
			return fail(err)
		}
	}
	for i := range c.Timers {
		r := &c.Timers[i]
		if cancelled[r.ID] {
			continue
		}
		due := dueNanos(r.Due)
		e := s.timers.startSet(a.id, r.ID, due, "")
		if e == nil {
			continue // pending already: the first one wins
		}
		tx.timerOps = append(tx.timerOps, timerOp{e: e, kind: opSet})
		rec := encodeTimer(&mailbox.Timer{ID: r.ID, Owner: c.Actor, To: r.To, Due: time.Unix(0, due), Payload: r.Payload})
		if err := tx.b.Set(timerKey(due, a.id, r.ID), rec, nil); err != nil {
			return fail(err)
		}
		if err := tx.b.Set(strKey(prefixTimerOf, a.id, r.ID), u64(uint64(due)), nil); err != nil {
			return fail(err)
		}
	}
	return nil
}

// deleteTimer adds the deletion of a timer's two keys to b.
func deleteTimer(b *pebble.Batch, due int64, owner uint64, id string) error {
	if err := b.Delete(timerKey(due, owner, id), nil); err != nil {
		return err
	}
	return b.Delete(strKey(prefixTimerOf, owner, id), nil)
}

// loadTimers fills the timer index from the owner index on disk, and
// reads the target of every timer set from outside (by a point lookup of
// its record) for the index by target. A record that cannot be read is
// left to FireDue, which reports it.
func (s *Store) loadTimers() error {
	err := s.scan([]byte{prefixTimerOf}, func(k, v []byte) error {
		if len(k) < 10 || len(v) != 8 {
			return fmt.Errorf("timer index entry %q is malformed", k)
		}
		due := binary.BigEndian.Uint64(v)
		if due > 1<<63-1 {
			return fmt.Errorf("timer index entry %q: due time out of range", k)
		}
		owner, id := binary.BigEndian.Uint64(k[1:9]), string(k[9:])
		var to string
		if owner == outsideOwner {
			t, _, err := s.readTimer(timerKey(int64(due), owner, id))
			var ce *mailbox.CorruptError
			if err != nil && !errors.As(err, &ce) {
				return err
			}
			to = t.To
		}
		s.timers.load(owner, id, int64(due), to)
		return nil
	})
	s.timers.loaded()
	return err
}

// readTimer reads one timer record. A record that does not decode, or
// that the engine finds damaged, is a *mailbox.CorruptError naming its
// key.
func (s *Store) readTimer(key []byte) (mailbox.Timer, bool, error) {
	v, c, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return mailbox.Timer{}, false, nil
	}
	if pebble.IsCorruptionError(err) {
		return mailbox.Timer{}, false, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("timer record %+q: %w", key, err)}
	}
	if err != nil {
		return mailbox.Timer{}, false, fmt.Errorf("read timer: %w", err)
	}
	t, err := decodeTimer(v)
	_ = c.Close()
	if err != nil {
		return mailbox.Timer{}, false, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("timer record %+q: %w", key, err)}
	}
	return t, true, nil
}

// PendingTimers implements mailbox.Timers, from the owner index on disk.
func (s *Store) PendingTimers(ctx context.Context, owner string) ([]mailbox.Timer, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	a, err := s.lookup(owner)
	if err != nil {
		return nil, err
	}
	var out []mailbox.Timer
	err = s.scan(idKey(prefixTimerOf, a.id), func(k, v []byte) error {
		if len(v) != 8 {
			return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("timer index entry %q of actor %q", k[9:], owner)}
		}
		t, found, err := s.readTimer(timerKey(int64(binary.BigEndian.Uint64(v)), a.id, string(k[9:])))
		if err != nil || !found {
			return err // not found: fired or cancelled since the scan began
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list timers of actor %q: %w", owner, err)
	}
	slices.SortFunc(out, func(x, y mailbox.Timer) int {
		if c := x.Due.Compare(y.Due); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out, nil
}

// NextTimer implements mailbox.Timers, from the in-memory index.
func (s *Store) NextTimer() (time.Time, bool) {
	if s.closed.Load() {
		return time.Time{}, false
	}
	due, ok := s.timers.next()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, due), true
}

// FireDue implements mailbox.Timers. Due timers are claimed in the index
// (so a concurrent cancel waits and a concurrent set of the same id is a
// no-op), their records read by point lookups (the fired timers' tombstones
// at the start of the 'T' range are never scanned), and deleted in the
// batch that enqueues their messages. If that batch fails, they are
// pending again and fire at a later call.
//
// A timer whose record cannot be read (it does not decode, or the engine
// finds it damaged) is not fired and stays on disk, for an operator to
// see: it is logged and returned as a *mailbox.CorruptError naming it,
// beside the timers that did fire, and taken out of the firing order until
// the store is opened again, so the timers due after it keep firing.
func (s *Store) FireDue(ctx context.Context, now time.Time, max int) (_ []mailbox.Timer, err error) {
	var tx *txn
	defer func() { s.announce(tx) }()
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if max <= 0 {
		return nil, nil
	}
	s.fireMu.Lock()
	defer s.fireMu.Unlock()
	claimed := s.timers.claimDue(dueNanos(now), max)
	if len(claimed) == 0 {
		return nil, nil
	}
	tx = s.newTxn()
	for _, e := range claimed {
		tx.timerOps = append(tx.timerOps, timerOp{e: e, kind: opFire})
	}
	fired, unreadable, err := s.fire(ctx, tx)
	if err == nil && len(unreadable) < len(tx.timerOps) { // something to delete
		err = s.apply(tx.b, s.writeOpts, tierSend)
	}
	tx.end(err)
	if err != nil {
		return nil, fmt.Errorf("fire due timers: %w", errors.Join(append([]error{err}, unreadable...)...))
	}
	if len(unreadable) > 0 {
		return fired, fmt.Errorf("fire due timers: %w", errors.Join(unreadable...))
	}
	return fired, nil
}

// fire adds the deletion of the timers tx claimed and their messages to
// tx. Targets are resolved (virtual ones created) in name order before any
// sequence number is reserved; see spawn.go. A timer whose record cannot
// be read is skipped (its claim becomes opSkip) and reported in
// unreadable.
func (s *Store) fire(ctx context.Context, tx *txn) (_ []mailbox.Timer, unreadable []error, _ error) {
	timers := make([]mailbox.Timer, 0, len(tx.timerOps))
	owners := make([]uint64, 0, len(tx.timerOps))
	var names []string
	for i := range tx.timerOps {
		op := &tx.timerOps[i]
		e := op.e
		t, found, err := s.readTimer(timerKey(e.due, e.owner, e.id))
		var ce *mailbox.CorruptError
		if errors.As(err, &ce) {
			op.kind = opSkip
			unreadable = append(unreadable, s.unreadableTimer(e, ce))
			continue
		}
		if err != nil {
			return nil, unreadable, err
		}
		if err := deleteTimer(tx.b, e.due, e.owner, e.id); err != nil {
			return nil, unreadable, err
		}
		if !found {
			s.opts.Logger.Warn("timer in the index has no record; dropped", "store", s.path, "timer", e.id, "owner", s.ownerName(e.owner))
			continue
		}
		timers = append(timers, t)
		owners = append(owners, e.owner)
		names = append(names, t.To)
	}
	slices.Sort(names)
	targets := make(map[string]*actor, len(names))
	for _, name := range slices.Compact(names) {
		a, _, err := s.resolve(ctx, tx, name, nil)
		if err != nil && !errors.Is(err, mailbox.ErrInvalidName) && !errors.Is(err, mailbox.ErrEmptyActorName) {
			return nil, unreadable, err
		}
		targets[name] = a
	}
	now := time.Now()
	for i := range timers {
		t := &timers[i]
		m := mailbox.Message{Sender: t.Owner, Payload: t.Payload, TimerID: t.ID, EnqueuedAt: now}
		if a := targets[t.To]; a != nil {
			_, _, err := tx.send(ctx, a, &m, nil)
			if err == nil {
				continue
			}
			if !errors.Is(err, mailbox.ErrUnknownActor) { // removed meanwhile: dead-letter it
				return nil, unreadable, err
			}
		}
		if err := s.deadLetterTimer(tx, owners[i], t, &m, now); err != nil {
			return nil, unreadable, err
		}
	}
	return timers, unreadable, nil
}

// unreadableTimer logs a timer whose record cannot be read and returns the
// error FireDue reports for it. FireDue meets it once per Open: its claim
// (opSkip) keeps it out of the firing order.
func (s *Store) unreadableTimer(e *timerEntry, ce *mailbox.CorruptError) error {
	owner := s.ownerName(e.owner)
	s.opts.Logger.Error("timer record cannot be read; the timer is not fired and its record is left on disk (a cancel deletes it; restore the store from a backup to fire it)",
		"store", s.path, "timer", e.id, "owner", owner, "err", ce.Err)
	return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("timer %q (owner: %s), not fired: %w", e.id, owner, ce.Err)}
}

// ownerName describes the owner of a timer by its actor id, for logs and
// errors. It looks through the registry: only for the rare timer that
// cannot be fired.
func (s *Store) ownerName(id uint64) string {
	if id == outsideOwner {
		return "none, set from outside"
	}
	for _, a := range s.reg.all() {
		if a.id == id {
			return fmt.Sprintf("actor %q", a.name)
		}
	}
	return fmt.Sprintf("actor id %d (no longer registered)", id)
}

// deadLetterTimer keeps the message of a timer whose target is unknown in
// its owner's dead letters, under timerDeadBase + n (see keys.go).
func (s *Store) deadLetterTimer(tx *txn, owner uint64, t *mailbox.Timer, m *mailbox.Message, now time.Time) error {
	a, err := s.lookup(t.Owner)
	if err != nil || a.id != owner {
		s.opts.Logger.Warn("timer fired to an unknown actor and has no owner to keep it (it was set from outside, or its owner is gone); dropped",
			"store", s.path, "timer", t.ID, "owner", t.Owner, "to", t.To)
		return nil //nolint:nilerr // an owner that is gone does not fail the firing: the timer is dropped, and logged
	}
	a.mu.Lock()
	seq := timerDeadBase + a.timerDead
	a.timerDead++
	a.mu.Unlock()
	m.Seq = seq
	m.LastError = fmt.Sprintf("timer %q of actor %q fired to %q, which is neither a registered nor a virtual actor: its message is kept here; requeue it once %q exists", t.ID, t.Owner, t.To, t.To)
	rec, err := encodeDeadLetter(mailbox.DeadLetter{Message: *m, DeadAt: now.UTC(), To: t.To})
	if err != nil {
		return err
	}
	if err := tx.b.Set(seqKey(prefixDead, a.id, seq), rec, nil); err != nil {
		return err
	}
	tx.dead = append(tx.dead, deadChange{a: a, delta: 1})
	return nil
}
