package pebblestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// Timers set from outside any actor: the core's SendAfter, behind `graft
// send --after`. They are ordinary timers (the same two keys, the same
// index, fired by FireDue) under owner id 0, which no actor has (actor ids
// start at 1), and Owner "" in the record: so no actor's Remove or
// PendingTimers touches them, and their message has an empty Sender, as a
// spawn's init from outside has. One whose target is unknown when it
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
	case len(t.ID) > maxTimerID:
		return fmt.Errorf("schedule a send to actor %q: timer id %.32q... is %d bytes, over %d", t.To, t.ID, len(t.ID), maxTimerID)
	case len(t.Payload) > s.opts.MaxMessageSize:
		return fmt.Errorf("schedule a send to actor %q: %w", t.To, &mailbox.TooLargeError{Actor: t.To, Size: len(t.Payload), Limit: s.opts.MaxMessageSize})
	}
	if err := mailbox.CheckActorName(t.To); err != nil {
		return fmt.Errorf("schedule a send: target: %w", err)
	}
	due := dueNanos(t.Due)
	e := s.timers.startSet(outsideOwner, t.ID, due)
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
// target is to, in due order (ties by id).
func (s *Store) Scheduled(ctx context.Context, to string) ([]mailbox.Timer, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []mailbox.Timer
	err := s.scan(idKey(prefixTimerOf, outsideOwner), func(k, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(v) != 8 {
			return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("timer index entry %q of the outside timers", k[9:])}
		}
		t, found, err := s.readTimer(timerKey(int64(binary.BigEndian.Uint64(v)), outsideOwner, string(k[9:])))
		if err != nil || !found || t.To != to {
			return err // not found: fired since the scan began
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the sends scheduled to actor %q: %w", to, err)
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
// name never receives them.
func (s *Store) Unschedule(ctx context.Context, to string) (n int, err error) {
	pending, err := s.Scheduled(ctx, to)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	tx := s.newTxn()
	defer func() { tx.end(err) }()
	for _, t := range pending {
		e, err := s.timers.startCancel(ctx, outsideOwner, t.ID)
		if err != nil {
			return 0, fmt.Errorf("cancel the sends scheduled to actor %q: %w", to, err)
		}
		if e == nil {
			continue // fired since the listing
		}
		tx.timerOps = append(tx.timerOps, timerOp{e: e, kind: opCancel})
		if err := deleteTimer(tx.b, e.due, outsideOwner, t.ID); err != nil {
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
