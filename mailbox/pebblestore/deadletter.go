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
}

func encodeDeadLetter(d mailbox.DeadLetter) ([]byte, error) {
	m := d.Message
	return json.Marshal(deadRecord{
		Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: m.Payload, CallChain: m.CallChain,
		EnqueuedAt: m.EnqueuedAt, Attempts: m.Attempts, LastError: m.LastError, DeadAt: d.DeadAt,
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
			EnqueuedAt: r.EnqueuedAt, Attempts: r.Attempts, LastError: r.LastError,
		},
		DeadAt: r.DeadAt,
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
// forget the new one).
func (s *Store) Requeue(ctx context.Context, name string, seq uint64) (mailbox.Receipt, error) {
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return mailbox.Receipt{}, err
	}
	v, c, err := s.db.Get(seqKey(prefixDead, a.id, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return mailbox.Receipt{}, fmt.Errorf("requeue dead letter %d of actor %q: %w", seq, name, mailbox.ErrUnknownMessage)
	}
	if err != nil {
		return mailbox.Receipt{}, fmt.Errorf("requeue dead letter %d of actor %q: %w", seq, name, err)
	}
	d, err := decodeDeadLetter(v)
	_ = c.Close()
	if err != nil {
		return mailbox.Receipt{}, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("dead letter %d of actor %q: %w", seq, name, err)}
	}
	a.mu.Lock()
	if a.pending[d.Message.ID] != nil && d.Message.ID != "" {
		a.mu.Unlock()
		return mailbox.Receipt{}, fmt.Errorf("requeue dead letter %d of actor %q: a send with id %q is in progress", seq, name, d.Message.ID)
	}
	newSeq := a.nextSeq
	a.nextSeq++
	a.mu.Unlock()

	m := d.Message
	m.Attempts, m.LastError, m.EnqueuedAt = 0, "", time.Now()
	b := s.db.NewBatch()
	err = b.Delete(seqKey(prefixDead, a.id, seq), nil)
	if err == nil && m.ID != "" {
		err = b.Delete(seqKey(prefixIDOrder, a.id, seq), nil)
		if err == nil {
			err = b.Delete(strKey(prefixOutcome, a.id, m.ID), nil)
		}
	}
	var record []byte
	if err == nil {
		record, err = s.putMessage(b, a, newSeq, &m)
	}
	if err == nil {
		err = s.apply(b, s.writeOpts, tierSend)
	}
	_ = b.Close()
	s.finishWrite(a, newSeq, "", nil, record, err)
	if err != nil {
		return mailbox.Receipt{}, fmt.Errorf("requeue dead letter %d of actor %q: %w", seq, name, err)
	}
	a.mu.Lock()
	a.dead--
	a.mu.Unlock()
	return mailbox.Receipt{Seq: newSeq}, nil
}
