package etcdstore

import (
	"context"
	"fmt"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// Commit implements mailbox.Queues: every commit of the call is one etcd
// transaction, guarded by the keys it read, the committer's epoch among
// them. Lazy is ignored: etcd makes every write durable on a quorum
// before it answers, which costs a lazy commit nothing it would save.
func (s *Store) Commit(ctx context.Context, commits ...mailbox.Commit) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if len(commits) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(commits))
	for i := range commits {
		c := &commits[i]
		if seen[c.Actor] {
			return fmt.Errorf("commit for actor %q: two commits for it in one call (one writer per actor)", c.Actor)
		}
		seen[c.Actor] = true
		if err := mailbox.CheckCommitRequests(c, s.opts.MaxMessageSize); err != nil {
			return err
		}
	}
	_, err := s.update(ctx, "commit for actor "+commits[0].Actor, func(t *txn) error {
		now := time.Now().UTC()
		for i := range commits {
			if err := s.stageCommit(ctx, t, &commits[i], now); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// stageCommit stages one commit in t. Spawns come before the outgoing
// messages, so a spawned actor's Init is its first message.
func (s *Store) stageCommit(ctx context.Context, t *txn, c *mailbox.Commit, now time.Time) error {
	fail := func(err error) error { return fmt.Errorf("commit for actor %q: %w", c.Actor, err) }
	cur, err := s.checkEpoch(ctx, t, c)
	if err != nil {
		return err
	}
	if c.Through > 0 {
		if err := s.stageAck(ctx, t, c, &cur); err != nil {
			return err
		}
	}
	if c.State != nil {
		v, err := encode(c.State)
		if err != nil {
			return fail(err)
		}
		t.put(s.k.state(c.Actor), v)
		cur.Module, cur.Schema = c.State.Module, c.State.Schema
	}
	if err := s.putCursor(t, c.Actor, cur); err != nil {
		return fail(err)
	}
	if err := s.stageOutcomes(ctx, t, c); err != nil {
		return fail(err)
	}
	for _, sp := range c.Spawns {
		if _, err := s.spawnIn(ctx, t, sp, c.Actor); err != nil {
			return fmt.Errorf("commit for actor %q spawns %q: %w", c.Actor, sp.Name, err)
		}
	}
	for _, o := range c.Outgoing {
		if err := mailbox.CheckActorName(o.To); err != nil {
			return fmt.Errorf("commit for actor %q sends to %q: %w", c.Actor, o.To, err)
		}
		if err := s.resolve(ctx, t, o.To); err != nil {
			return fmt.Errorf("commit for actor %q sends to %q: %w", c.Actor, o.To, err)
		}
		m := o.Message
		m.Attempts, m.LastError, m.EnqueuedAt = 0, "", now
		if _, _, err := s.appendMsg(ctx, t, o.To, m, false); err != nil {
			return fmt.Errorf("commit for actor %q sends to %q: %w", c.Actor, o.To, err)
		}
	}
	if err := s.stageTimers(ctx, t, c); err != nil {
		return fail(err)
	}
	if c.Handled != nil && c.KeepHandled > 0 && c.Through > 0 {
		if err := s.stageHandled(t, c); err != nil {
			return fail(err)
		}
	}
	return nil
}

// checkEpoch reads the committer's epoch, record, head and cursor within
// t and checks the commit against them.
func (s *Store) checkEpoch(ctx context.Context, t *txn, c *mailbox.Commit) (cursorRecord, error) {
	ek := s.k.epoch(c.Actor)
	if err := t.get(ctx, s.k.actor(c.Actor), ek, s.k.cursor(c.Actor), s.k.head(c.Actor)); err != nil {
		return cursorRecord{}, err
	}
	if _, ok := t.value(s.k.actor(c.Actor)); !ok {
		return cursorRecord{}, fmt.Errorf("commit for actor %q: %w", c.Actor, mailbox.ErrUnknownActor)
	}
	v, _ := t.value(ek)
	epoch, err := s.decodeUint(ek, v)
	if err != nil {
		return cursorRecord{}, err
	}
	if c.Epoch != epoch {
		return cursorRecord{}, fmt.Errorf("commit for actor %q with epoch %d, current epoch is %d: %w", c.Actor, c.Epoch, epoch, mailbox.ErrFenced)
	}
	cur, err := s.cursorOf(ctx, t, c.Actor)
	if err != nil {
		return cursorRecord{}, err
	}
	last, err := s.headOf(ctx, t, c.Actor)
	if err != nil {
		return cursorRecord{}, err
	}
	switch {
	case c.Through != 0 && c.Through <= cur.Acked:
		return cursorRecord{}, fmt.Errorf("commit for actor %q acks through %d, already acked through %d: %w", c.Actor, c.Through, cur.Acked, mailbox.ErrAlreadyAcked)
	case c.Through > last:
		return cursorRecord{}, fmt.Errorf("commit for actor %q acks through %d, the last message is %d: %w", c.Actor, c.Through, last, mailbox.ErrBeyondEnd)
	}
	for _, d := range c.DeadLetters {
		if d.Seq <= cur.Acked || d.Seq > c.Through {
			return cursorRecord{}, fmt.Errorf("commit for actor %q dead-letters message %d, outside the batch %d..%d it acks: %w", c.Actor, d.Seq, cur.Acked+1, c.Through, mailbox.ErrUnknownMessage)
		}
	}
	return cur, nil
}

// stageAck drops the acked messages (dead letters copied out first) and
// moves the watermark, and evicts the ids that fell out of the window.
func (s *Store) stageAck(ctx context.Context, t *txn, c *mailbox.Commit, cur *cursorRecord) error {
	for _, d := range c.DeadLetters {
		qk := s.k.seqKey(kindQueue, c.Actor, d.Seq)
		if err := t.get(ctx, qk); err != nil {
			return err
		}
		v, ok := t.value(qk)
		if !ok {
			return fmt.Errorf("commit for actor %q: dead-letter message %d: %w", c.Actor, d.Seq, mailbox.ErrUnknownMessage)
		}
		var m mailbox.Message
		if err := s.decode(qk, v, &m); err != nil {
			return err
		}
		m.LastError = d.Error
		dv, err := encode(deadRecord{Message: m, DeadAt: time.Now().UTC()})
		if err != nil {
			return err
		}
		t.put(s.k.seqKey(kindDead, c.Actor, d.Seq), dv)
		cur.Dead++
	}
	t.delRange(s.k.seqKey(kindQueue, c.Actor, cur.Acked+1), s.k.seqKey(kindQueue, c.Actor, c.Through+1))
	cur.Acked = c.Through
	return s.evictIDs(ctx, t, c.Actor, cur.Acked)
}

// evictBatch bounds the ids one commit evicts, so that eviction never
// makes a commit much larger; it keeps pace as long as commits ack at
// most this many messages each on average.
const evictBatch = 64

// evictIDs drops the idempotency records of acked messages that fell out
// of the window (forgotten says so already; this frees the space).
func (s *Store) evictIDs(ctx context.Context, t *txn, name string, acked uint64) error {
	last, err := s.headOf(ctx, t, name)
	if err != nil {
		return err
	}
	if last < s.opts.IdempotencyWindow {
		return nil
	}
	bound := min(acked, last-s.opts.IdempotencyWindow)
	if bound == 0 {
		return nil
	}
	from, end := s.k.seqKey(kindIDBySeq, name, 0), s.k.seqKey(kindIDBySeq, name, bound+1)
	keys, err := t.scan(ctx, from, end, evictBatch)
	if err != nil || len(keys) == 0 {
		return err
	}
	for _, jk := range keys {
		id, _ := t.value(jk)
		_, rest, _ := s.k.splitKey(kindIDBySeq, jk)
		seq, err := seqOf(rest)
		if err != nil {
			return &mailbox.CorruptError{Path: s.where(), Err: fmt.Errorf("id index key %q: %w", jk, err)}
		}
		ik := s.k.idKey(name, string(id))
		if err := t.get(ctx, ik); err != nil {
			return err
		}
		if v, ok := t.value(ik); ok {
			var rec idRecord
			if err := s.decode(ik, v, &rec); err != nil {
				return err
			}
			if rec.Seq == seq { // not taken over by a later message
				t.del(ik)
			}
		}
	}
	t.delRange(from, keys[len(keys)-1]+"\x00")
	return nil
}

// stageOutcomes stores the replies and dead-letter errors of a commit
// under their messages' ids, for Lookup and for retries.
func (s *Store) stageOutcomes(ctx context.Context, t *txn, c *mailbox.Commit) error {
	set := func(id string, seq uint64, fn func(*idRecord)) error {
		ik := s.k.idKey(c.Actor, id)
		rec, staged := t.ids[ik]
		if !staged {
			if err := t.get(ctx, ik); err != nil {
				return err
			}
			if v, ok := t.value(ik); ok {
				if err := s.decode(ik, v, &rec); err != nil {
					return err
				}
			} else {
				rec = idRecord{Seq: seq}
			}
		}
		fn(&rec)
		v, err := encode(rec)
		if err != nil {
			return err
		}
		if t.ids == nil {
			t.ids = make(map[string]idRecord)
		}
		t.ids[ik] = rec
		t.put(ik, v)
		return nil
	}
	for _, r := range c.Replies {
		err := set(r.MessageID, 0, func(rec *idRecord) {
			if r.Refusal != "" {
				rec.Outcome, rec.Error, rec.Reply = mailbox.OutcomeRefused, r.Refusal, nil
				return
			}
			rec.Outcome, rec.Reply = mailbox.OutcomeReplied, r.Payload
		})
		if err != nil {
			return err
		}
	}
	for _, d := range c.DeadLetters {
		qk := s.k.seqKey(kindQueue, c.Actor, d.Seq)
		v, _ := t.value(qk) // read by stageAck
		var m mailbox.Message
		if err := s.decode(qk, v, &m); err != nil {
			return err
		}
		if m.ID == "" {
			continue
		}
		if err := set(m.ID, d.Seq, func(rec *idRecord) { rec.Outcome, rec.Error = mailbox.OutcomeDeadLettered, d.Error }); err != nil {
			return err
		}
	}
	return nil
}

// stageHandled keeps the batch for dry runs and drops the batches that
// hold none of the actor's last KeepHandled messages.
func (s *Store) stageHandled(t *txn, c *mailbox.Commit) error {
	v, err := encode(c.Handled)
	if err != nil {
		return fmt.Errorf("encode the handled batch kept for dry runs: %w", err)
	}
	t.put(s.k.seqKey(kindHandled, c.Actor, c.Through), v)
	if keep := uint64(c.KeepHandled); c.Through > keep {
		t.delRange(s.k.seqKey(kindHandled, c.Actor, 0), s.k.seqKey(kindHandled, c.Actor, c.Through-keep+1))
	}
	return nil
}
