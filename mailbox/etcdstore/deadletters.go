package etcdstore

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/mailbox"
)

// timerDeadBase is where the dead letters of timers whose target was
// unknown start in their owner's area: above every message's sequence
// number, so they never collide with one.
const timerDeadBase = 1 << 63

// DeadLetters implements mailbox.Queues.
func (s *Store) DeadLetters(ctx context.Context, name string) ([]mailbox.DeadLetter, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.exists(ctx, name); err != nil {
		return nil, fmt.Errorf("list dead letters of actor %q: %w", name, err)
	}
	out := []mailbox.DeadLetter{}
	_, err := s.rangeAll(ctx, s.k.of(kindDead, name), 0, func(key string, v []byte, _ int64) error {
		var d deadRecord
		if err := s.decode(key, v, &d); err != nil {
			return err
		}
		out = append(out, mailbox.DeadLetter{Message: d.Message, DeadAt: d.DeadAt, To: d.To})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters of actor %q: %w", name, err)
	}
	return out, nil
}

// Requeue implements mailbox.Queues.
func (s *Store) Requeue(ctx context.Context, name string, seq uint64) (mailbox.Receipt, error) {
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	var receipt mailbox.Receipt
	_, err := s.update(ctx, "requeue a dead letter of actor "+name, func(t *txn) error {
		dk := s.k.seqKey(kindDead, name, seq)
		if err := t.get(ctx, dk, s.k.actor(name)); err != nil {
			return err
		}
		if _, ok := t.value(s.k.actor(name)); !ok {
			return mailbox.UnknownActorError(name)
		}
		v, ok := t.value(dk)
		if !ok {
			return fmt.Errorf("requeue dead letter %d of actor %q: %w", seq, name, mailbox.ErrUnknownMessage)
		}
		var d deadRecord
		if err := s.decode(dk, v, &d); err != nil {
			return err
		}
		to := name
		if d.To != "" {
			to = d.To
		}
		if err := s.resolve(ctx, t, to); err != nil {
			return err
		}
		m := d.Message
		m.Seq, m.Attempts, m.LastError, m.EnqueuedAt = 0, 0, "", time.Time{}
		newSeq, _, err := s.appendMsg(ctx, t, to, m, true)
		if err != nil {
			return err
		}
		t.del(dk)
		if err := s.moveDeadCount(ctx, t, name, -1); err != nil {
			return err
		}
		receipt = mailbox.Receipt{Seq: newSeq}
		return nil
	})
	if err != nil {
		return mailbox.Receipt{}, fmt.Errorf("requeue dead letter %d of actor %q: %w", seq, name, err)
	}
	return receipt, nil
}

// moveDeadCount changes the dead-letter count in name's cursor within t.
func (s *Store) moveDeadCount(ctx context.Context, t *txn, name string, by int) error {
	cur, err := s.cursorOf(ctx, t, name)
	if err != nil {
		return err
	}
	if by < 0 && cur.Dead > 0 {
		cur.Dead--
	} else if by > 0 {
		cur.Dead += uint64(by)
	}
	return s.putCursor(t, name, cur)
}

// putCursor stages name's cursor in t; settle moves the cache to the
// last one staged.
func (s *Store) putCursor(t *txn, name string, cur cursorRecord) error {
	v, err := encode(cur)
	if err != nil {
		return err
	}
	t.put(s.k.cursor(name), v)
	if t.cursors == nil {
		t.cursors = make(map[string]cursorRecord)
	}
	t.cursors[name] = cur
	return nil
}

// deadLetterTimer keeps, in the owner's dead letters, the message of a
// timer whose target is unknown.
func (s *Store) deadLetterTimer(ctx context.Context, t *txn, owner string, msg mailbox.Message, to string, now time.Time) error {
	// The last one there, if any, gives the next number; the owner's
	// cursor, which this write moves, guards it against a concurrent one.
	scan, err := t.scan(ctx, s.k.seqKey(kindDead, owner, timerDeadBase), clientv3.GetPrefixRangeEnd(s.k.of(kindDead, owner)), 1,
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return err
	}
	n := uint64(timerDeadBase)
	if len(scan) > 0 {
		_, rest, _ := s.k.splitKey(kindDead, scan[0])
		last, err := seqOf(rest)
		if err != nil {
			return &mailbox.CorruptError{Path: s.where(), Err: fmt.Errorf("dead letter key %q: %w", scan[0], err)}
		}
		n = last + 1
	}
	for {
		if _, taken := t.putAt[s.k.seqKey(kindDead, owner, n)]; !taken {
			break
		}
		n++
	}
	msg.Seq = n
	v, err := encode(deadRecord{Message: msg, DeadAt: now, To: to})
	if err != nil {
		return err
	}
	t.put(s.k.seqKey(kindDead, owner, n), v)
	return s.moveDeadCount(ctx, t, owner, 1)
}
