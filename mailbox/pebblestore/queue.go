package pebblestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

func seqOfValue(v []byte) uint64 { return binary.BigEndian.Uint64(v) }

// Enqueue implements mailbox.Queues.
//
// The sequence number is reserved in memory before the write and the write
// may finish out of order with a concurrent one; readers see a message only
// once every lower sequence number of the actor is finished (actor.finish),
// so nothing is ever read behind a gap that a slower writer fills later.
// A virtual actor that does not exist yet is created in the same batch
// (spawn.go).
func (s *Store) Enqueue(ctx context.Context, name string, msg mailbox.Message) (_ mailbox.Receipt, err error) {
	var tx *txn
	defer func() { s.announce(tx) }()
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	if err := mailbox.CheckActorName(name); err != nil {
		return mailbox.Receipt{}, err
	}
	if len(msg.Payload) > s.opts.MaxMessageSize {
		return mailbox.Receipt{}, &mailbox.TooLargeError{Actor: name, Size: len(msg.Payload), Limit: s.opts.MaxMessageSize}
	}
	tx = s.newTxn()
	a, _, err := s.resolve(ctx, tx, name, nil)
	if err == nil && a == nil {
		err = mailbox.UnknownActorError(name)
	}
	if err != nil {
		tx.end(err)
		return mailbox.Receipt{}, err
	}
	msg.EnqueuedAt = time.Now()
	var digest []byte // only a message with an id can be a duplicate to check
	if msg.ID != "" {
		digest = payloadDigest(msg.Payload)
	}
	seq, dup, err := tx.send(ctx, a, &msg, digest)
	if err == nil && dup == nil {
		err = s.apply(tx.b, s.writeOpts, tierSend)
		if err != nil {
			err = fmt.Errorf("enqueue to actor %q: %w", name, err)
		}
	}
	tx.end(err)
	switch {
	case err != nil:
		return mailbox.Receipt{}, err
	case dup != nil:
		return *dup, nil
	}
	return mailbox.Receipt{Seq: seq}, nil
}

// reserve hands out the next sequence number of a for a write in tx. For a
// message with an id it first checks the idempotency index and the sends in
// progress: a duplicate returns its receipt (dup), a concurrent send with
// the same id is waited for (one of tx itself is a duplicate at once). The
// returned pendingID must be passed to finishWrite.
//
// digest is the payload's digest: a duplicate with another digest is
// refused with an *IDReuseError. nil skips the check (and entries written
// before digests were kept have none).
func (s *Store) reserve(ctx context.Context, tx *txn, a *actor, id string, digest []byte) (seq uint64, p *pendingID, dup *mailbox.Receipt, err error) {
	for {
		a.mu.Lock()
		if a.removed {
			a.mu.Unlock()
			return 0, nil, nil, fmt.Errorf("actor %q: %w", a.name, mailbox.ErrUnknownActor)
		}
		if id == "" {
			break
		}
		other := a.pending[id]
		if other == nil {
			r, stored, found, err := s.lookupID(a, id)
			if err != nil {
				a.mu.Unlock()
				return 0, nil, nil, err
			}
			if found {
				a.mu.Unlock()
				if err := reused(a.name, id, r.Seq, stored, digest); err != nil {
					return 0, nil, nil, err
				}
				r.Duplicate = true
				return 0, nil, &r, nil
			}
			break
		}
		if other.tx == tx {
			a.mu.Unlock()
			if err := reused(a.name, id, other.seq, other.digest, digest); err != nil {
				return 0, nil, nil, err
			}
			return 0, nil, &mailbox.Receipt{Seq: other.seq, Duplicate: true}, nil
		}
		a.mu.Unlock()
		select {
		case <-other.done:
		case <-ctx.Done():
			return 0, nil, nil, fmt.Errorf("enqueue to actor %q: waiting for an earlier send with id %q: %w", a.name, id, ctx.Err())
		}
		if other.err == nil {
			if err := reused(a.name, id, other.seq, other.digest, digest); err != nil {
				return 0, nil, nil, err
			}
			return 0, nil, &mailbox.Receipt{Seq: other.seq, Duplicate: true}, nil
		}
		// The earlier send failed and stored nothing: try ourselves.
	}
	// a.mu is held here.
	seq = a.nextSeq
	a.nextSeq++
	if id != "" {
		p = &pendingID{seq: seq, digest: digest, tx: tx, done: make(chan struct{})}
		if a.pending == nil {
			a.pending = make(map[string]*pendingID)
		}
		a.pending[id] = p
	}
	a.mu.Unlock()
	return seq, p, nil, nil
}

// putMessage adds the message and its idempotency entries to b, and
// returns the message's encoded record (b holds a copy) for the recent
// cache.
func (s *Store) putMessage(b *pebble.Batch, a *actor, seq uint64, msg *mailbox.Message) ([]byte, error) {
	record := encodeMessage(msg)
	if err := b.Set(seqKey(prefixQueue, a.id, seq), record, nil); err != nil {
		return nil, err
	}
	if msg.ID == "" {
		return record, nil
	}
	if err := b.Set(strKey(prefixIDIndex, a.id, msg.ID), append(u64(seq), payloadDigest(msg.Payload)...), nil); err != nil {
		return nil, err
	}
	return record, b.Set(seqKey(prefixIDOrder, a.id, seq), []byte(msg.ID), nil)
}

// finishWrite publishes (or abandons, on error) a reserved sequence number
// and wakes senders waiting on the same id. record is the message's
// encoded record, cached for Read once the write succeeded (nil: do not
// cache).
func (s *Store) finishWrite(a *actor, seq uint64, id string, p *pendingID, record []byte, err error) {
	a.mu.Lock()
	if err == nil {
		s.remember(a, seq, record)
	}
	visible, moved := a.finish(seq)
	if p != nil {
		delete(a.pending, id)
		p.err = err
	}
	removed := a.removed
	if removed {
		a.cond.Broadcast() // Remove waits for the writes in progress
	}
	a.mu.Unlock()
	if p != nil {
		close(p.done)
	}
	if moved && !removed && s.opts.Notify != nil {
		s.opts.Notify(a.name, visible)
	}
}

// lookupID reads what the store knows about an id, and the digest of the
// payload it was accepted with (nil for entries older than digests).
// Callers hold a.mu.
func (s *Store) lookupID(a *actor, id string) (mailbox.Receipt, []byte, bool, error) {
	r, digest, found, err := s.readID(a, id)
	if err != nil || !found {
		return r, nil, found, err
	}
	r, err = s.outcomeOf(a, id, r)
	return r, digest, err == nil, err
}

// readID reads the id index entry: sequence number and payload digest.
func (s *Store) readID(a *actor, id string) (mailbox.Receipt, []byte, bool, error) {
	v, c, err := s.db.Get(strKey(prefixIDIndex, a.id, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return mailbox.Receipt{}, nil, false, nil
	}
	if err != nil {
		return mailbox.Receipt{}, nil, false, fmt.Errorf("look up id %q of actor %q: %w", id, a.name, err)
	}
	defer func() { _ = c.Close() }()
	if len(v) != 8 && len(v) != 8+digestSize {
		return mailbox.Receipt{}, nil, false, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("id index entry %q of actor %q", id, a.name)}
	}
	var digest []byte
	if len(v) > 8 {
		digest = append([]byte(nil), v[8:]...)
	}
	return mailbox.Receipt{Seq: seqOfValue(v[:8])}, digest, true, nil
}

// outcomeOf completes r, the receipt of a known id, with its outcome.
func (s *Store) outcomeOf(a *actor, id string, r mailbox.Receipt) (mailbox.Receipt, error) {
	if r.Seq > a.acked {
		return r, nil // still queued
	}
	r.Outcome = mailbox.OutcomeApplied
	v, c, err := s.db.Get(strKey(prefixOutcome, a.id, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return mailbox.Receipt{}, fmt.Errorf("look up outcome of id %q of actor %q: %w", id, a.name, err)
	}
	o, err := decodeOutcome(v)
	_ = c.Close()
	if err != nil {
		return mailbox.Receipt{}, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("outcome of id %q of actor %q: %w", id, a.name, err)}
	}
	r.Outcome = o.kind
	if o.kind == mailbox.OutcomeDeadLettered || o.kind == mailbox.OutcomeRefused {
		r.Error = string(o.payload)
	} else {
		r.Reply = o.payload
	}
	return r, nil
}

// Lookup implements mailbox.Queues.
func (s *Store) Lookup(ctx context.Context, name, id string) (mailbox.Receipt, error) {
	if err := s.enter(); err != nil {
		return mailbox.Receipt{}, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return mailbox.Receipt{}, err
	}
	if id == "" {
		return mailbox.Receipt{}, fmt.Errorf("look up a message of actor %q: the id is empty", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.pending[id]; p != nil {
		return mailbox.Receipt{Seq: p.seq}, nil
	}
	r, _, found, err := s.lookupID(a, id)
	if err != nil {
		return mailbox.Receipt{}, err
	}
	if !found {
		return mailbox.Receipt{}, fmt.Errorf("message id %q of actor %q: %w (never sent, or older than the idempotency window)", id, name, mailbox.ErrUnknownMessage)
	}
	return r, nil
}

// Read implements mailbox.Queues. It starts at the ack watermark (the
// iterator's lower bound), so the tombstones of acked messages are never
// visited.
func (s *Store) Read(ctx context.Context, name string, after uint64, max int) ([]mailbox.Message, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, nil
	}
	a.mu.Lock()
	lower := max64(after, a.acked) + 1
	upper := a.visible
	var failed map[uint64]bool
	for seq := range a.failures {
		if seq >= lower && seq <= upper {
			if failed == nil {
				failed = make(map[uint64]bool)
			}
			failed[seq] = true
		}
	}
	seqs, records, cached := a.cachedRange(lower, upper, max)
	a.mu.Unlock()
	if lower > upper {
		return nil, nil
	}
	if cached {
		return s.decodeCached(a, seqs, records, failed)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: seqKey(prefixQueue, a.id, lower),
		UpperBound: seqKey(prefixQueue, a.id, upper+1),
	})
	if err != nil {
		return nil, fmt.Errorf("read mailbox of actor %q: %w", name, err)
	}
	defer it.Close()
	var out []mailbox.Message
	for it.First(); it.Valid() && len(out) < max; it.Next() {
		m, err := decodeMessage(seqOf(it.Key()), it.Value())
		if err != nil {
			return nil, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("actor %q: %w", name, err)}
		}
		out = append(out, m)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read mailbox of actor %q: %w", name, err)
	}
	if err := s.addFailures(a, out, failed); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeCached decodes records from the recent cache, exactly as Read
// decodes them from disk.
func (s *Store) decodeCached(a *actor, seqs []uint64, records [][]byte, failed map[uint64]bool) ([]mailbox.Message, error) {
	out := make([]mailbox.Message, len(records))
	for i, r := range records {
		m, err := decodeMessage(seqs[i], r)
		if err != nil {
			return nil, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("actor %q (cached record): %w", a.name, err)}
		}
		out[i] = m
	}
	if err := s.addFailures(a, out, failed); err != nil {
		return nil, err
	}
	return out, nil
}

// addFailures fills in the attempts and last error of the messages that
// failed before.
func (s *Store) addFailures(a *actor, out []mailbox.Message, failed map[uint64]bool) error {
	for i := range out {
		if failed[out[i].Seq] {
			f, err := s.getFailure(a, out[i].Seq)
			if err != nil {
				return err
			}
			out[i].Attempts, out[i].LastError = f.attempts, f.reason
		}
	}
	return nil
}

func (s *Store) getFailure(a *actor, seq uint64) (failure, error) {
	v, c, err := s.db.Get(seqKey(prefixFailure, a.id, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return failure{}, nil
	}
	if err != nil {
		return failure{}, fmt.Errorf("read attempts of message %d of actor %q: %w", seq, a.name, err)
	}
	defer c.Close()
	f, err := decodeFailure(v)
	if err != nil {
		return failure{}, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("attempts of message %d of actor %q: %w", seq, a.name, err)}
	}
	return f, nil
}

// RecordFailure implements mailbox.Queues. Failures are rare, so it always
// syncs: an attempt count must survive a crash, or a message that kills the
// core would be retried for ever.
func (s *Store) RecordFailure(ctx context.Context, name string, seq uint64, reason string) (uint32, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.removed {
		return 0, mailbox.UnknownActorError(name)
	}
	if seq <= a.acked || seq > a.visible {
		return 0, fmt.Errorf("record a failure of message %d of actor %q: %w (pending messages are %d..%d)", seq, name, mailbox.ErrUnknownMessage, a.acked+1, a.visible)
	}
	f, err := s.getFailure(a, seq)
	if err != nil {
		return 0, err
	}
	f.attempts++
	f.reason = reason
	if err := s.set(seqKey(prefixFailure, a.id, seq), encodeFailure(f), pebble.Sync, tierCommit); err != nil {
		return 0, fmt.Errorf("record a failure of message %d of actor %q: %w", seq, name, err)
	}
	if a.failures == nil {
		a.failures = make(map[uint64]struct{})
	}
	a.failures[seq] = struct{}{}
	return f.attempts, nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// digestSize is how much of a payload's sha256 the id index keeps: enough
// to tell two payloads apart, small beside the id.
const digestSize = 16

// payloadDigest is the digest kept with an id.
func payloadDigest(p []byte) []byte {
	sum := sha256.Sum256(p)
	return sum[:digestSize]
}

// reused refuses a duplicate id whose payload differs from the first one's.
func reused(actor, id string, seq uint64, stored, given []byte) error {
	if stored == nil || given == nil || bytes.Equal(stored, given) {
		return nil
	}
	return &mailbox.IDReuseError{Actor: actor, ID: id, Seq: seq,
		Stored: hex.EncodeToString(stored[:6]), Given: hex.EncodeToString(given[:6])}
}
