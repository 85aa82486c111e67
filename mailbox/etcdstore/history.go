package etcdstore

import (
	"context"
	"fmt"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// AppendHistory implements mailbox.History: ids come from a counter key,
// moved in the same transaction as the record.
func (s *Store) AppendHistory(ctx context.Context, rec mailbox.UpgradeRecord) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var id uint64
	_, err := s.update(ctx, "append upgrade record of "+rec.Behaviour, func(t *txn) error {
		nk := s.k.historyNext()
		if err := t.get(ctx, nk); err != nil {
			return err
		}
		v, _ := t.value(nk)
		last, err := s.decodeUint(nk, v)
		if err != nil {
			return err
		}
		id = last + 1
		r := rec
		r.ID = id
		rv, err := encode(r)
		if err != nil {
			return fmt.Errorf("encode upgrade record of %q: %w", rec.Behaviour, err)
		}
		t.put(nk, uintValue(id))
		t.put(s.k.history(id), rv)
		return nil
	})
	return id, err
}

// ListHistory implements mailbox.History.
func (s *Store) ListHistory(ctx context.Context) ([]mailbox.UpgradeRecord, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := []mailbox.UpgradeRecord{}
	_, err := s.rangeAll(ctx, s.k.prefix+kindHistory, 0, func(key string, v []byte, _ int64) error {
		var r mailbox.UpgradeRecord
		if err := s.decode(key, v, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list upgrade history: %w", err)
	}
	return out, nil
}

// Handled implements mailbox.Reader.
func (s *Store) Handled(ctx context.Context, name string) ([]mailbox.Handled, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.exists(ctx, name); err != nil {
		return nil, fmt.Errorf("list the handled batches of actor %q: %w", name, err)
	}
	out := []mailbox.Handled{}
	_, err := s.rangeAll(ctx, s.k.of(kindHandled, name), 0, func(key string, v []byte, _ int64) error {
		var h mailbox.Handled
		if err := s.decode(key, v, &h); err != nil {
			return err
		}
		out = append(out, h)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the handled batches of actor %q: %w", name, err)
	}
	return out, nil
}

// Remove implements mailbox.Registry: one transaction deletes the actor's
// record, head, cursor and state and every range of its keys, its own
// timers included. Its epoch counter stays, so a stale writer of the
// removed actor is fenced from a new one of the same name.
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	_, err := s.update(ctx, "remove actor "+name, func(t *txn) error {
		if err := t.get(ctx, s.k.actor(name)); err != nil {
			return err
		}
		if _, ok := t.value(s.k.actor(name)); !ok {
			return mailbox.UnknownActorError(name)
		}
		tp := s.k.of(kindTimer, name)
		timers, err := t.scan(ctx, tp, prefixEnd(tp), 0)
		if err != nil {
			return err
		}
		for _, k := range []string{s.k.actor(name), s.k.head(name), s.k.cursor(name), s.k.state(name)} {
			t.del(k)
		}
		if _, err := s.stageUnschedule(ctx, t, name); err != nil { // else one would create it again, virtual
			return err
		}
		for _, kind := range []string{kindQueue, kindID, kindIDBySeq, kindDead, kindHandled, kindTimer} {
			p := s.k.of(kind, name)
			t.delRange(p, prefixEnd(p))
		}
		t.onCommit(func(rev int64) {
			s.cache.setHead(name, 0, rev, true)
			s.cache.setCursor(name, cursorRecord{}, rev, true)
			for _, k := range timers {
				_, id, _ := s.k.splitKey(kindTimer, k)
				s.cache.setTimer(k, name, id, time.Time{}, rev, true)
			}
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove actor %q: %w", name, err)
	}
	return nil
}
