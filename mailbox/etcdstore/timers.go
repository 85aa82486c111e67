package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// stageTimers stages a commit's timer sets and cancels. A set of an id
// pending already changes nothing; cancels apply after sets. Each timer
// key read is guarded, so a FireDue of the same timer elsewhere makes
// one of the two run again and see the other's result.
func (s *Store) stageTimers(ctx context.Context, t *txn, c *mailbox.Commit) error {
	cancelled := make(map[string]bool, len(c.CancelTimers))
	for _, id := range c.CancelTimers {
		cancelled[id] = true
	}
	for _, r := range c.Timers {
		k := s.k.timer(c.Actor, r.ID)
		if cancelled[r.ID] {
			continue
		}
		if err := t.get(ctx, k); err != nil {
			return err
		}
		if _, pending := t.value(k); pending {
			continue
		}
		if _, staged := t.putAt[k]; staged {
			continue
		}
		due := r.Due.UTC()
		v, err := encode(timerRecord{To: r.To, Due: due, Payload: r.Payload})
		if err != nil {
			return fmt.Errorf("timer %q: %w", r.ID, err)
		}
		t.put(k, v)
		owner, id := c.Actor, r.ID
		t.onCommit(func(rev int64) { s.cache.setTimer(k, owner, id, due, rev, false) })
	}
	for id := range cancelled {
		k := s.k.timer(c.Actor, id)
		if err := t.get(ctx, k); err != nil {
			return err
		}
		if _, pending := t.value(k); !pending {
			continue
		}
		t.del(k)
		owner := c.Actor
		t.onCommit(func(rev int64) { s.cache.setTimer(k, owner, id, time.Time{}, rev, true) })
	}
	return nil
}

// PendingTimers implements mailbox.Timers.
func (s *Store) PendingTimers(ctx context.Context, owner string) ([]mailbox.Timer, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.exists(ctx, owner); err != nil {
		return nil, fmt.Errorf("list timers of actor %q: %w", owner, err)
	}
	out := []mailbox.Timer{}
	_, err := s.rangeAll(ctx, s.k.of(kindTimer, owner), 0, func(key string, v []byte, _ int64) error {
		_, id, _ := s.k.splitKey(kindTimer, key)
		var tr timerRecord
		if err := s.decode(key, v, &tr); err != nil {
			return err
		}
		out = append(out, mailbox.Timer{ID: id, Owner: owner, To: tr.To, Due: tr.Due, Payload: tr.Payload})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list timers of actor %q: %w", owner, err)
	}
	sortTimers(out)
	return out, nil
}

// NextTimer implements mailbox.Timers, from the cache.
func (s *Store) NextTimer() (time.Time, bool) {
	if err := s.enter(); err != nil {
		return time.Time{}, false
	}
	defer s.leave()
	return s.cache.next()
}

// opsPerTimer bounds the operations one fired timer adds to FireDue's
// transaction (its deletion, the message, the head, an id, a creation).
const opsPerTimer = 8

// FireDue implements mailbox.Timers: the due timers (from the cache) are
// deleted and their messages appended in one transaction, guarded by the
// timers' keys, so a timer fired by another process, or cancelled by a
// commit meanwhile, is seen and skipped on the retry.
func (s *Store) FireDue(ctx context.Context, now time.Time, max int) ([]mailbox.Timer, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	s.fireMu.Lock()
	defer s.fireMu.Unlock()
	max = min(max, s.cfg.MaxTxnOps/opsPerTimer)
	due := s.cache.dueBy(now, max)
	if len(due) == 0 {
		return nil, nil
	}
	var fired []mailbox.Timer
	var unreadable []error
	_, err := s.update(ctx, "fire due timers", func(t *txn) error {
		fired, unreadable = fired[:0], unreadable[:0]
		keys := make([]string, len(due))
		for i, e := range due {
			keys[i] = e.key
		}
		if err := t.get(ctx, keys...); err != nil {
			return err
		}
		for _, e := range due {
			tm, err := s.fireOne(ctx, t, e, now)
			var ce *mailbox.CorruptError
			if errors.As(err, &ce) {
				unreadable = append(unreadable, err)
				continue
			}
			if err != nil {
				return err
			}
			if tm != nil {
				fired = append(fired, *tm)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fire due timers: %w", err)
	}
	if len(unreadable) > 0 {
		return fired, fmt.Errorf("fire due timers: %w", errors.Join(unreadable...))
	}
	return fired, nil
}

// fireOne stages the firing of one timer in t; nil if it is no longer
// pending.
func (s *Store) fireOne(ctx context.Context, t *txn, e timerEntry, now time.Time) (*mailbox.Timer, error) {
	v, ok := t.value(e.key)
	if !ok {
		return nil, nil
	}
	var tr timerRecord
	if err := s.decode(e.key, v, &tr); err != nil {
		s.cache.setTimer(e.key, e.owner, e.id, time.Time{}, e.rev+1, true) // reported once, not fired
		return nil, err
	}
	t.del(e.key)
	key, owner, id := e.key, e.owner, e.id
	t.onCommit(func(rev int64) { s.cache.setTimer(key, owner, id, time.Time{}, rev, true) })
	if owner == "" { // set from outside: its id follows its target in the key
		_, id, _ = strings.Cut(e.id, "\x00")
	}
	msg := mailbox.Message{Sender: owner, Payload: tr.Payload, TimerID: id, EnqueuedAt: now.UTC()}
	err := s.resolve(ctx, t, tr.To)
	switch {
	case errors.Is(err, mailbox.ErrUnknownActor) && owner == "":
		s.opts.Logger.Warn("a send scheduled from outside came due for an actor that does not exist; it is dropped", "to", tr.To, "timer", id)
		return &mailbox.Timer{ID: id, To: tr.To, Due: tr.Due, Payload: tr.Payload}, nil
	case errors.Is(err, mailbox.ErrUnknownActor):
		msg.LastError = fmt.Sprintf("timer %q of actor %q fired for actor %q, which does not exist", e.id, e.owner, tr.To)
		if err := s.deadLetterTimer(ctx, t, e.owner, msg, tr.To, now.UTC()); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if _, _, err := s.appendMsg(ctx, t, tr.To, msg, true); err != nil {
			return nil, err
		}
	}
	return &mailbox.Timer{ID: id, Owner: owner, To: tr.To, Due: tr.Due, Payload: tr.Payload}, nil
}

// Schedule sets a timer owned by no actor (core.SendAfter, `graft send
// --after`): at t.Due its payload is delivered to t.To (TimerID t.ID,
// Sender empty). An id pending for that target already changes nothing,
// so a retry sets one timer.
func (s *Store) Schedule(ctx context.Context, tr mailbox.TimerRequest) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	switch {
	case tr.ID == "" || len(tr.ID) > mailbox.MaxTimerID:
		return fmt.Errorf("schedule a send to actor %q: the timer id must be 1 to %d bytes", tr.To, mailbox.MaxTimerID)
	case len(tr.Payload) > s.opts.MaxMessageSize:
		return fmt.Errorf("schedule a send to actor %q: %w", tr.To, &mailbox.TooLargeError{Actor: tr.To, Size: len(tr.Payload), Limit: s.opts.MaxMessageSize})
	}
	if err := mailbox.CheckActorName(tr.To); err != nil {
		return fmt.Errorf("schedule a send: %w", err)
	}
	k := s.k.outside(tr.To, tr.ID)
	due := tr.Due.UTC()
	_, err := s.update(ctx, "schedule a send to actor "+tr.To, func(t *txn) error {
		if err := t.get(ctx, k); err != nil {
			return err
		}
		if _, pending := t.value(k); pending {
			return nil
		}
		v, err := encode(timerRecord{To: tr.To, Due: due, Payload: tr.Payload})
		if err != nil {
			return fmt.Errorf("timer %q: %w", tr.ID, err)
		}
		t.put(k, v)
		t.onCommit(func(rev int64) { s.cache.setTimer(k, "", tr.To+"\x00"+tr.ID, due, rev, false) })
		return nil
	})
	return err
}

// Scheduled lists the pending timers set from outside for to, in due
// order (ties by id).
func (s *Store) Scheduled(ctx context.Context, to string) ([]mailbox.Timer, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := []mailbox.Timer{}
	p := s.k.outsideOf(to)
	_, err := s.rangeAll(ctx, p, 0, func(key string, v []byte, _ int64) error {
		var tr timerRecord
		if err := s.decode(key, v, &tr); err != nil {
			return err
		}
		out = append(out, mailbox.Timer{ID: key[len(p):], To: to, Due: tr.Due, Payload: tr.Payload})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the sends scheduled to actor %q: %w", to, err)
	}
	sortTimers(out)
	return out, nil
}

// Unschedule cancels every timer set from outside for to, in one write,
// and returns how many it cancelled.
func (s *Store) Unschedule(ctx context.Context, to string) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var n int
	_, err := s.update(ctx, "cancel the sends scheduled to actor "+to, func(t *txn) error {
		keys, err := s.stageUnschedule(ctx, t, to)
		n = len(keys)
		return err
	})
	return n, err
}

// stageUnschedule deletes, in t, the timers set from outside for to.
func (s *Store) stageUnschedule(ctx context.Context, t *txn, to string) ([]string, error) {
	p := s.k.outsideOf(to)
	keys, err := t.scan(ctx, p, prefixEnd(p), 0)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	t.delRange(p, prefixEnd(p))
	t.onCommit(func(rev int64) {
		for _, k := range keys {
			s.cache.setTimer(k, "", to+"\x00"+k[len(p):], time.Time{}, rev, true)
		}
	})
	return keys, nil
}

// sortTimers puts timers in due order, ties by id.
func sortTimers(ts []mailbox.Timer) {
	slices.SortFunc(ts, func(a, b mailbox.Timer) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
