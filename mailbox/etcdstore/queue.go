package etcdstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/mailbox"
)

// resolve makes sure name exists within t: registered (read and guarded),
// created in t already, or virtual, in which case t creates it. Any other
// name is mailbox.UnknownActorError.
func (s *Store) resolve(ctx context.Context, t *txn, name string) error {
	if _, ok := t.created[name]; ok {
		return nil
	}
	_, exists, err := s.readActor(ctx, t, name)
	if err != nil || exists {
		return err
	}
	if s.opts.Virtual != nil {
		if b, ok := s.opts.Virtual(name); ok {
			return s.create(t, name, actorRecord{Behaviour: b, Created: time.Now().UTC(), Origin: mailbox.OriginVirtual})
		}
	}
	return mailbox.UnknownActorError(name)
}

// headOf returns name's mailbox head as t sees it (its own appends
// included).
func (s *Store) headOf(ctx context.Context, t *txn, name string) (uint64, error) {
	if last, ok := t.heads[name]; ok {
		return last, nil
	}
	k := s.k.head(name)
	if err := t.get(ctx, k); err != nil {
		return 0, err
	}
	v, _ := t.value(k)
	last, err := s.decodeUint(k, v)
	if err != nil {
		return 0, err
	}
	if t.heads == nil {
		t.heads = make(map[string]uint64)
	}
	t.heads[name] = last
	return last, nil
}

// cursorOf reads name's cursor within t.
func (s *Store) cursorOf(ctx context.Context, t *txn, name string) (cursorRecord, error) {
	if cur, ok := t.cursors[name]; ok {
		return cur, nil
	}
	k := s.k.cursor(name)
	if err := t.get(ctx, k); err != nil {
		return cursorRecord{}, err
	}
	var cur cursorRecord
	if v, ok := t.value(k); ok {
		if err := s.decode(k, v, &cur); err != nil {
			return cursorRecord{}, err
		}
	}
	return cur, nil
}

func digest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:16])
}

// appendMsg stages msg at the end of name's mailbox in t (name resolved
// already). A message whose id the actor accepted within the idempotency
// window is not appended: its receipt is returned instead. fresh skips
// that check and takes the id over (a requeued dead letter keeps its id).
func (s *Store) appendMsg(ctx context.Context, t *txn, name string, msg mailbox.Message, fresh bool) (uint64, *mailbox.Receipt, error) {
	last, err := s.headOf(ctx, t, name)
	if err != nil {
		return 0, nil, err
	}
	var sum string
	if msg.ID != "" {
		sum = digest(msg.Payload)
		if !fresh {
			dup, err := s.duplicate(ctx, t, name, msg.ID, sum, last)
			if err != nil || dup != nil {
				return 0, dup, err
			}
		}
	}
	seq := last + 1
	msg.Seq = seq
	if msg.EnqueuedAt.IsZero() {
		msg.EnqueuedAt = time.Now().UTC()
	}
	v, err := encode(msg)
	if err != nil {
		return 0, nil, err
	}
	t.put(s.k.seqKey(kindQueue, name, seq), v)
	t.heads[name] = seq
	t.put(s.k.head(name), uintValue(seq))
	if msg.ID != "" {
		rec, err := encode(idRecord{Seq: seq, Sum: sum})
		if err != nil {
			return 0, nil, err
		}
		ik := s.k.idKey(name, msg.ID)
		t.put(ik, rec)
		t.put(s.k.seqKey(kindIDBySeq, name, seq), msg.ID)
		if t.ids == nil {
			t.ids = make(map[string]idRecord)
		}
		t.ids[ik] = idRecord{Seq: seq, Sum: sum} // seen by a later append of t
	}
	return seq, nil, nil
}

// duplicate checks id against the actor's idempotency records within t.
func (s *Store) duplicate(ctx context.Context, t *txn, name, id, sum string, last uint64) (*mailbox.Receipt, error) {
	ik := s.k.idKey(name, id)
	rec, ok := t.ids[ik]
	if !ok {
		if err := t.get(ctx, ik); err != nil {
			return nil, err
		}
		v, found := t.value(ik)
		if !found {
			return nil, nil
		}
		if err := s.decode(ik, v, &rec); err != nil {
			return nil, err
		}
	}
	cur, err := s.cursorOf(ctx, t, name)
	if err != nil {
		return nil, err
	}
	if s.forgotten(rec, cur.Acked, last) {
		return nil, nil
	}
	if rec.Sum != sum {
		return nil, &mailbox.IDReuseError{Actor: name, ID: id, Seq: rec.Seq, Stored: rec.Sum, Given: sum}
	}
	r := receiptOf(rec, cur.Acked)
	r.Duplicate = true
	return &r, nil
}

// forgotten reports whether an id record fell out of the idempotency
// window: it is acked, and the actor took Window messages since. Records
// are dropped by commits a little later (evictIDs); this makes the window
// exact meanwhile.
func (s *Store) forgotten(rec idRecord, acked, last uint64) bool {
	return rec.Seq != 0 && rec.Seq <= acked && last >= rec.Seq+s.opts.IdempotencyWindow
}

// receiptOf is the receipt an id record gives, against the ack watermark.
func receiptOf(rec idRecord, acked uint64) mailbox.Receipt {
	r := mailbox.Receipt{Seq: rec.Seq}
	switch {
	case rec.Outcome != mailbox.OutcomePending:
		r.Outcome, r.Reply, r.Error = rec.Outcome, rec.Reply, rec.Error
	case rec.Seq <= acked:
		r.Outcome = mailbox.OutcomeApplied
	}
	return r
}

// Enqueue implements mailbox.Queues.
func (s *Store) Enqueue(ctx context.Context, name string, msg mailbox.Message) (mailbox.Receipt, error) {
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	if err := mailbox.CheckActorName(name); err != nil {
		return mailbox.Receipt{}, fmt.Errorf("enqueue: %w", err)
	}
	if len(msg.Payload) > s.opts.MaxMessageSize {
		return mailbox.Receipt{}, fmt.Errorf("enqueue to actor %q: %w", name, &mailbox.TooLargeError{Actor: name, Size: len(msg.Payload), Limit: s.opts.MaxMessageSize})
	}
	msg.Attempts, msg.LastError, msg.EnqueuedAt = 0, "", time.Time{}
	var receipt mailbox.Receipt
	_, err := s.update(ctx, "enqueue to actor "+name, func(t *txn) error {
		if err := s.resolve(ctx, t, name); err != nil {
			return err
		}
		seq, dup, err := s.appendMsg(ctx, t, name, msg, false)
		if dup != nil {
			receipt, t.ops = *dup, nil
			return nil
		}
		receipt = mailbox.Receipt{Seq: seq}
		return err
	})
	if err != nil {
		return mailbox.Receipt{}, fmt.Errorf("enqueue to actor %q: %w", name, err)
	}
	return receipt, nil
}

// Spawn implements mailbox.Registry.
func (s *Store) Spawn(ctx context.Context, req mailbox.SpawnRequest) (mailbox.Actor, bool, error) {
	if err := s.enter(); err != nil {
		return mailbox.Actor{}, false, err
	}
	defer s.leave()
	if err := mailbox.CheckSpawn(&req, s.opts.MaxMessageSize); err != nil {
		return mailbox.Actor{}, false, err
	}
	var created bool
	_, err := s.update(ctx, "spawn actor "+req.Name, func(t *txn) error {
		var err error
		created, err = s.spawnIn(ctx, t, req, "")
		return err
	})
	if err != nil {
		return mailbox.Actor{}, false, fmt.Errorf("spawn actor %q: %w", req.Name, err)
	}
	a, err := s.actor(ctx, req.Name)
	return a, created, err
}

// spawnIn stages a spawn in t: nothing for an actor that exists with the
// same behaviour, a *SpawnConflictError for another behaviour.
func (s *Store) spawnIn(ctx context.Context, t *txn, req mailbox.SpawnRequest, sender string) (bool, error) {
	if b, ok := t.created[req.Name]; ok {
		if b != req.Behaviour {
			return false, &mailbox.SpawnConflictError{Name: req.Name, Existing: b, Requested: req.Behaviour}
		}
		return false, nil
	}
	rec, exists, err := s.readActor(ctx, t, req.Name)
	if err != nil {
		return false, err
	}
	if exists {
		if rec.Behaviour != req.Behaviour {
			return false, &mailbox.SpawnConflictError{Name: req.Name, Existing: rec.Behaviour, Requested: req.Behaviour}
		}
		return false, nil
	}
	if err := s.create(t, req.Name, actorRecord{Behaviour: req.Behaviour, Created: time.Now().UTC(), Origin: mailbox.OriginSpawn}); err != nil {
		return false, err
	}
	if req.Init != nil {
		if _, _, err := s.appendMsg(ctx, t, req.Name, mailbox.Message{Sender: sender, Payload: req.Init}, true); err != nil {
			return false, err
		}
	}
	return true, nil
}

// exists checks that name is an actor: from the cache, or from etcd for
// one another process created a moment ago.
func (s *Store) exists(ctx context.Context, name string) error {
	if _, ok := s.cache.get(name); ok {
		return nil
	}
	resp, err := s.kv.Get(ctx, s.k.actor(name), clientv3.WithKeysOnly())
	if err != nil {
		return s.wrap("read actor "+name, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("actor %q: %w", name, mailbox.ErrUnknownActor)
	}
	return nil
}

// Lookup implements mailbox.Queues.
func (s *Store) Lookup(ctx context.Context, name, id string) (mailbox.Receipt, error) {
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	r, _, err := s.lookup(ctx, name, id)
	return r, err
}

// lookup is Lookup, with the revision it read at.
func (s *Store) lookup(ctx context.Context, name, id string) (mailbox.Receipt, int64, error) {
	if id == "" {
		return mailbox.Receipt{}, 0, fmt.Errorf("look up a message of actor %q: the id is empty", name)
	}
	resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(s.k.actor(name), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.k.idKey(name, id)), clientv3.OpGet(s.k.cursor(name)), clientv3.OpGet(s.k.head(name))).Commit()
	if err != nil {
		return mailbox.Receipt{}, 0, s.wrap("look up id "+id+" of actor "+name, err)
	}
	rev := resp.Header.Revision
	val := func(i int) []byte {
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			return kvs[0].Value
		}
		return nil
	}
	unknown := fmt.Errorf("message id %q of actor %q: %w (never sent, or older than the idempotency window)", id, name, mailbox.ErrUnknownMessage)
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return mailbox.Receipt{}, rev, fmt.Errorf("message id %q of actor %q: %w (the actor does not exist)", id, name, mailbox.ErrUnknownMessage)
	}
	if val(1) == nil {
		return mailbox.Receipt{}, rev, unknown
	}
	var rec idRecord
	var cur cursorRecord
	if err := s.decode(s.k.idKey(name, id), val(1), &rec); err != nil {
		return mailbox.Receipt{}, rev, err
	}
	if err := s.decode(s.k.cursor(name), val(2), &cur); err != nil {
		return mailbox.Receipt{}, rev, err
	}
	last, err := s.decodeUint(s.k.head(name), val(3))
	if err != nil {
		return mailbox.Receipt{}, rev, err
	}
	if s.forgotten(rec, cur.Acked, last) {
		return mailbox.Receipt{}, rev, unknown
	}
	return receiptOf(rec, cur.Acked), rev, nil
}

// WaitOutcome waits until the message with this id is committed (its
// outcome is no longer pending), for a caller whose message another
// process handles. Every commit of the actor moves its cursor in the same
// transaction as the reply, and the store already watches the cursors
// (cache.go): a cursor event wakes the waiter, which looks again. (A watch
// of its own per call would start behind the cluster's head revision,
// and etcd catches such watches up only every 100 ms.)
func (s *Store) WaitOutcome(ctx context.Context, name, id string) (mailbox.Receipt, error) {
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	for {
		woken, done := s.cursorWaiters.add(name)
		r, _, err := s.lookup(ctx, name, id)
		if errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			r.Outcome, err = mailbox.OutcomePending, nil // an election: look again after the next wake-up or second
		}
		if err != nil || r.Outcome != mailbox.OutcomePending {
			done()
			return r, err
		}
		select {
		case <-woken:
		case <-time.After(time.Second): // a reloaded watch may have skipped events
		case <-ctx.Done():
			done()
			return mailbox.Receipt{}, fmt.Errorf("wait for message %q of actor %q: %w", id, name, ctx.Err())
		}
		done()
	}
}

// Read implements mailbox.Queues: one range read of the mailbox after
// after. Messages appear only with their head, in one transaction, so the
// range never has a hole below a message it holds.
func (s *Store) Read(ctx context.Context, name string, after uint64, max int) ([]mailbox.Message, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.exists(ctx, name); err != nil {
		return nil, fmt.Errorf("read mailbox of actor %q: %w", name, err)
	}
	if max <= 0 {
		return nil, nil
	}
	from := s.k.seqKey(kindQueue, name, after+1)
	resp, err := s.kv.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.k.of(kindQueue, name))), clientv3.WithLimit(int64(max)))
	if err != nil {
		return nil, s.wrap("read mailbox of actor "+name, err)
	}
	out := make([]mailbox.Message, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m mailbox.Message
		if err := s.decode(string(kv.Key), kv.Value, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// RecordFailure implements mailbox.Queues: the attempts live in the
// pending message's own value.
func (s *Store) RecordFailure(ctx context.Context, name string, seq uint64, reason string) (uint32, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var attempts uint32
	_, err := s.update(ctx, "record a failure of actor "+name, func(t *txn) error {
		k := s.k.seqKey(kindQueue, name, seq)
		if err := t.get(ctx, k, s.k.actor(name)); err != nil {
			return err
		}
		if _, ok := t.value(s.k.actor(name)); !ok {
			return mailbox.UnknownActorError(name)
		}
		v, ok := t.value(k)
		if !ok {
			return fmt.Errorf("record a failure of message %d of actor %q: %w (it is not pending)", seq, name, mailbox.ErrUnknownMessage)
		}
		var m mailbox.Message
		if err := s.decode(k, v, &m); err != nil {
			return err
		}
		m.Attempts++
		m.LastError = reason
		attempts = m.Attempts
		nv, err := encode(m)
		if err != nil {
			return err
		}
		t.put(k, nv)
		return nil
	})
	return attempts, err
}
