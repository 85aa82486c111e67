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
	slices.SortFunc(out, func(a, b mailbox.Timer) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
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
	msg := mailbox.Message{Sender: e.owner, Payload: tr.Payload, TimerID: e.id, EnqueuedAt: now.UTC()}
	err := s.resolve(ctx, t, tr.To)
	switch {
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
	return &mailbox.Timer{ID: e.id, Owner: e.owner, To: tr.To, Due: tr.Due, Payload: tr.Payload}, nil
}
