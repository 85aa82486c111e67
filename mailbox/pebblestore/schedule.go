package pebblestore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// Timers set from outside any actor: the core's SendAfter, behind `graft
// send --after`. They are ordinary timers (the same two keys, the same
// index, fired by FireDue) under owner id 0, which no actor has (actor ids
// start at 1), and Owner "" in the record: so no actor's PendingTimers
// lists them, and their message has an empty Sender, as a spawn's init
// from outside has. The in-memory index also keeps them by target
// (timerindex.go; rebuilt by Open from their records), for Scheduled,
// Unschedule and the target's Remove, which deletes them in its own batch:
// otherwise one that fires between the Remove and the core's Unschedule
// (or after a crash between the two) would send to the destroyed name,
// creating a virtual actor again. One whose target is unknown when it
// fires has no owner to keep it in its dead letters: it is dropped, with a
// warning in the log.

// outsideOwner is the owner id of the timers set from outside.
const outsideOwner = 0

// Schedule sets a timer owned by no actor: at t.Due its payload is
// delivered to t.To like any timer's (TimerID t.ID, Sender empty). The
// target is not checked here (it may be a virtual actor not created yet;
// the core checks it). An id already pending among the outside timers
// changes nothing, so a retry with the same id sets one timer. It returns
// once the timer is durable under the store's durability mode.
func (s *Store) Schedule(ctx context.Context, t mailbox.TimerRequest) (err error) {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	switch {
	case t.ID == "":
		return fmt.Errorf("schedule a send to actor %q: the timer has no id", t.To)
	case len(t.ID) > mailbox.MaxTimerID:
		return fmt.Errorf("schedule a send to actor %q: timer id %.32q... is %d bytes, over %d", t.To, t.ID, len(t.ID), mailbox.MaxTimerID)
	case len(t.Payload) > s.opts.MaxMessageSize:
		return fmt.Errorf("schedule a send to actor %q: %w", t.To, &mailbox.TooLargeError{Actor: t.To, Size: len(t.Payload), Limit: s.opts.MaxMessageSize})
	}
	if err := mailbox.CheckActorName(t.To); err != nil {
		return fmt.Errorf("schedule a send: target: %w", err)
	}
	due := dueNanos(t.Due)
	e := s.timers.startSet(outsideOwner, t.ID, due, t.To)
	if e == nil {
		return nil // pending already: the first one wins
	}
	tx := s.newTxn()
	tx.timerOps = append(tx.timerOps, timerOp{e: e, kind: opSet})
	defer func() { tx.end(err) }()
	rec := encodeTimer(&mailbox.Timer{ID: t.ID, To: t.To, Due: time.Unix(0, due), Payload: t.Payload})
	if err := tx.b.Set(timerKey(due, outsideOwner, t.ID), rec, nil); err != nil {
		return fmt.Errorf("schedule a send to actor %q: %w", t.To, err)
	}
	if err := tx.b.Set(strKey(prefixTimerOf, outsideOwner, t.ID), u64(uint64(due)), nil); err != nil {
		return fmt.Errorf("schedule a send to actor %q: %w", t.To, err)
	}
	if err := s.apply(tx.b, s.writeOpts, tierSend); err != nil {
		return fmt.Errorf("schedule a send to actor %q: %w", t.To, err)
	}
	return nil
}

// Scheduled lists the pending timers set from outside (Schedule) whose
// target is to, in due order (ties by id): the index by target names
// them, their records are point lookups.
func (s *Store) Scheduled(ctx context.Context, to string) ([]mailbox.Timer, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []mailbox.Timer
	for _, e := range s.timers.outsideTo(to) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list the sends scheduled to actor %q: %w", to, err)
		}
		t, found, err := s.readTimer(timerKey(e.due, outsideOwner, e.id))
		if err != nil {
			return nil, fmt.Errorf("list the sends scheduled to actor %q: %w", to, err)
		}
		if found && t.To == to { // not found: not written yet, or fired or cancelled since
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(x, y mailbox.Timer) int {
		if c := x.Due.Compare(y.Due); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out, nil
}

// Unschedule cancels every timer set from outside (Schedule) whose target
// is to, in one write, and returns how many it cancelled: destroying an
// actor removes the sends scheduled to it too, so a later actor of the same
// name never receives them. (Remove deletes them already; this is for a
// name that is not, or no longer, an actor.)
func (s *Store) Unschedule(ctx context.Context, to string) (n int, err error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	listed := s.timers.outsideTo(to)
	if len(listed) == 0 {
		return 0, nil
	}
	tx := s.newTxn()
	defer func() { tx.end(err) }()
	for _, l := range listed {
		e, err := s.timers.cancelEntry(ctx, outsideOwner, l.id, l)
		if err != nil {
			return 0, fmt.Errorf("cancel the sends scheduled to actor %q: %w", to, err)
		}
		if e == nil {
			continue // fired since the listing, or not written yet
		}
		tx.timerOps = append(tx.timerOps, timerOp{e: e, kind: opCancel})
		if err := deleteTimer(tx.b, e.due, outsideOwner, e.id); err != nil {
			return 0, fmt.Errorf("cancel the sends scheduled to actor %q: %w", to, err)
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.apply(tx.b, s.writeOpts, tierCommit); err != nil {
		return 0, fmt.Errorf("cancel the sends scheduled to actor %q: %w", to, err)
	}
	return n, nil
}

// unscheduleIn claims the pending timers set from outside whose target is
// to for tx, and adds their deletion to its batch: Remove's part of
// Unschedule. The caller holds fireMu.
func unscheduleIn(tx *txn, to string) error {
	for _, e := range tx.s.timers.claimOutsideTo(to) {
		tx.timerOps = append(tx.timerOps, timerOp{e: e, kind: opCancel})
		if err := deleteTimer(tx.b, e.due, outsideOwner, e.id); err != nil {
			return err
		}
	}
	return nil
}
