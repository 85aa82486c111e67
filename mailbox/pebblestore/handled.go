package pebblestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

// The batches kept for dry runs (mailbox.Handled) are JSON under
// W id lastseq, one per batch, keyed by the last sequence number the batch
// acked. A commit that keeps one also drops, with one range deletion, the
// batches that end at or before lastseq - keep: none of their messages is
// among the actor's last keep. JSON, not the store's own binary codecs:
// the records are read only by a dry run, and only for the behaviours
// that opt in, so their size matters more than their speed.

// writeHandled adds c's batch to the actor's kept ones and drops the
// batches that fell out of the window.
func writeHandled(b *pebble.Batch, id uint64, c *mailbox.Commit) error {
	v, err := json.Marshal(c.Handled)
	if err != nil {
		return fmt.Errorf("encode the handled batch kept for dry runs: %w", err)
	}
	if err := b.Set(seqKey(prefixHandled, id, c.Through), v, nil); err != nil {
		return err
	}
	if keep := uint64(c.KeepHandled); c.Through > keep {
		return b.DeleteRange(seqKey(prefixHandled, id, 0), seqKey(prefixHandled, id, c.Through-keep+1), nil)
	}
	return nil
}

// Handled implements mailbox.Reader.
func (s *Store) Handled(ctx context.Context, name string) ([]mailbox.Handled, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	out := []mailbox.Handled{}
	err = s.scan(idKey(prefixHandled, a.id), func(k, v []byte) error {
		var h mailbox.Handled
		if err := json.Unmarshal(v, &h); err != nil {
			return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("handled batch %d of actor %q: %w", seqOf(k), name, err)}
		}
		out = append(out, h)
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list the handled batches of actor %q: %w", name, err)
	}
	return out, nil
}
