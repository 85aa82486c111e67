package pebblestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

// deadRecord is the JSON form of a dead letter: rare, and read by people.
type deadRecord struct {
	Seq        uint64    `json:"seq"`
	ID         string    `json:"id,omitempty"`
	Sender     string    `json:"sender,omitempty"`
	Payload    []byte    `json:"payload"`
	CallChain  []string  `json:"call_chain,omitempty"`
	EnqueuedAt time.Time `json:"enqueued_at"`
	Attempts   uint32    `json:"attempts"`
	LastError  string    `json:"last_error"`
	DeadAt     time.Time `json:"dead_at"`
	TimerID    string    `json:"timer_id,omitempty"`
	Trace      string    `json:"trace_parent,omitempty"`
	To         string    `json:"to,omitempty"`
}

func encodeDeadLetter(d mailbox.DeadLetter) ([]byte, error) {
	m := d.Message
	return json.Marshal(deadRecord{
		Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: m.Payload, CallChain: m.CallChain,
		EnqueuedAt: m.EnqueuedAt, Attempts: m.Attempts, LastError: m.LastError, DeadAt: d.DeadAt,
		TimerID: m.TimerID, Trace: m.TraceParent, To: d.To,
	})
}

func decodeDeadLetter(b []byte) (mailbox.DeadLetter, error) {
	var r deadRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return mailbox.DeadLetter{}, err
	}
	return mailbox.DeadLetter{
		Message: mailbox.Message{
			Seq: r.Seq, ID: r.ID, Sender: r.Sender, Payload: r.Payload, CallChain: r.CallChain,
			EnqueuedAt: r.EnqueuedAt, Attempts: r.Attempts, LastError: r.LastError, TimerID: r.TimerID,
			TraceParent: r.Trace,
		},
		DeadAt: r.DeadAt,
		To:     r.To,
	}, nil
}

// DeadLetters implements mailbox.Queues.
func (s *Store) DeadLetters(ctx context.Context, name string) ([]mailbox.DeadLetter, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	var out []mailbox.DeadLetter
	err = s.scan(idKey(prefixDead, a.id), func(k, v []byte) error {
		d, err := decodeDeadLetter(v)
		if err != nil {
			return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("dead letter %d of actor %q: %w", seqOf(k), name, err)}
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters of actor %q: %w", name, err)
	}
	return out, nil
}

// Requeue implements mailbox.Queues: in one batch it deletes the dead
// letter, appends the message anew and points its id at the new sequence
// number (dropping the old id entry, so eviction of the old position cannot
// forget the new one). A timer's dead letter (DeadLetter.To) goes to its
// target instead, created if virtual. Concurrent requeues of one dead
// letter are serialized (claimDeadLetter): one delivers it, the others
// find it gone.
func (s *Store) Requeue(ctx context.Context, name string, seq uint64) (_ mailbox.Receipt, err error) {
	var tx *txn
	defer func() { s.announce(tx) }()
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return mailbox.Receipt{}, err
	}
	tx = s.newTxn()
	newSeq, err := s.requeue(ctx, tx, a, seq)
	tx.end(err)
	if err != nil {
		return mailbox.Receipt{}, fmt.Errorf("requeue dead letter %d of actor %q: %w", seq, name, err)
	}
	return mailbox.Receipt{Seq: newSeq}, nil
}

// requeue claims a's dead letter seq for tx, reads it and adds its
// requeue to tx's batch, and writes the batch.
func (s *Store) requeue(ctx context.Context, tx *txn, a *actor, seq uint64) (uint64, error) {
	if err := claimDeadLetter(ctx, tx, a, seq); err != nil {
		return 0, err
	}
	d, err := s.readDeadLetter(a, seq)
	if err != nil {
		return 0, err
	}
	m := d.Message
	m.Attempts, m.LastError, m.EnqueuedAt = 0, "", time.Now()
	var newSeq uint64
	if d.To != "" && d.To != a.name {
		newSeq, err = s.requeueTo(ctx, tx, d.To, &m)
	} else {
		newSeq, err = s.requeueHere(tx, a, seq, &m)
	}
	if err != nil {
		return 0, err
	}
	if err := tx.b.Delete(seqKey(prefixDead, a.id, seq), nil); err != nil {
		return 0, err
	}
	tx.dead = append(tx.dead, deadChange{a: a, delta: -1})
	return newSeq, s.apply(tx.b, s.writeOpts, tierSend)
}

// claimDeadLetter makes tx the only write requeueing a's dead letter seq
// until tx ends. A pebble batch does not check what was read, so two
// requeues that both read the dead letter would both deliver its message
// (and both count it off). A requeue of it in progress is waited for:
// then the dead letter is gone, and the read that follows fails with
// ErrUnknownMessage, or that requeue failed and this one goes on.
func claimDeadLetter(ctx context.Context, tx *txn, a *actor, seq uint64) error {
	for {
		a.mu.Lock()
		if a.removed {
			a.mu.Unlock()
			return mailbox.UnknownActorError(a.name)
		}
		other := a.requeuing[seq]
		if other == nil {
			if a.requeuing == nil {
				a.requeuing = make(map[uint64]chan struct{})
			}
			done := make(chan struct{})
			a.requeuing[seq] = done
			a.mu.Unlock()
			tx.requeues = append(tx.requeues, requeueClaim{a: a, seq: seq, done: done})
			return nil
		}
		a.mu.Unlock()
		select {
		case <-other:
		case <-ctx.Done():
			return fmt.Errorf("waiting for another requeue of it: %w", ctx.Err())
		}
	}
}

// releaseDeadLetter ends a claim of claimDeadLetter.
func releaseDeadLetter(c requeueClaim) {
	c.a.mu.Lock()
	delete(c.a.requeuing, c.seq)
	if c.a.removed {
		c.a.cond.Broadcast() // Remove waits for the writes in progress
	}
	c.a.mu.Unlock()
	close(c.done)
}

// readDeadLetter reads one dead letter of a.
func (s *Store) readDeadLetter(a *actor, seq uint64) (mailbox.DeadLetter, error) {
	v, c, err := s.db.Get(seqKey(prefixDead, a.id, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return mailbox.DeadLetter{}, mailbox.ErrUnknownMessage
	}
	if err != nil {
		return mailbox.DeadLetter{}, fmt.Errorf("read it: %w", err)
	}
	d, err := decodeDeadLetter(v)
	_ = c.Close()
	if err != nil {
		return mailbox.DeadLetter{}, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("dead letter %d of actor %q: %w", seq, a.name, err)}
	}
	return d, nil
}

// requeueHere appends m to a's own mailbox at a new sequence number, its
// id (if any) moved there from the dead letter's seq.
func (s *Store) requeueHere(tx *txn, a *actor, seq uint64, m *mailbox.Message) (uint64, error) {
	if m.ID != "" {
		if err := tx.b.Delete(seqKey(prefixIDOrder, a.id, seq), nil); err != nil {
			return 0, err
		}
		if err := tx.b.Delete(strKey(prefixOutcome, a.id, m.ID), nil); err != nil {
			return 0, err
		}
	}
	a.mu.Lock()
	if a.removed {
		a.mu.Unlock()
		return 0, mailbox.UnknownActorError(a.name)
	}
	if m.ID != "" && a.pending[m.ID] != nil {
		a.mu.Unlock()
		return 0, fmt.Errorf("a send with id %q is in progress", m.ID)
	}
	newSeq := a.nextSeq
	a.nextSeq++
	a.mu.Unlock()
	return newSeq, tx.put(a, newSeq, nil, m)
}

// requeueTo sends a timer's dead-lettered message to its target.
func (s *Store) requeueTo(ctx context.Context, tx *txn, to string, m *mailbox.Message) (uint64, error) {
	a, _, err := s.resolve(ctx, tx, to, nil)
	if err == nil && a == nil {
		err = mailbox.UnknownActorError(to)
	}
	if err != nil {
		return 0, fmt.Errorf("send it to %q: %w", to, err)
	}
	seq, dup, err := tx.send(ctx, a, m, nil)
	if err == nil && dup != nil {
		seq = dup.Seq
	}
	return seq, err
}
