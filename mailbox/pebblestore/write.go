package pebblestore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

// apply commits b once the disk has room for it at tier t (or fails at
// once with a *mailbox.DiskFullError, writing nothing). Every write of the
// store goes through here.
//
// The engine panics (through Logger.Fatalf) when it cannot write its log:
// by then the batch is applied in memory but not on disk, and its commit
// pipeline is broken. apply turns that panic into a *mailbox.FailedError
// and the store refuses every call from then on, so nothing unwritten is
// ever acknowledged and the core stays up to report it.
func (s *Store) apply(b *pebble.Batch, opts *pebble.WriteOptions, t tier) (err error) {
	release, err := s.space.admit(t, b.Len())
	if err != nil {
		return err
	}
	defer release()
	defer func() {
		if r := recover(); r != nil {
			err = s.fail(fmt.Errorf("the engine failed a commit: %v", r))
		}
	}()
	return b.Commit(opts)
}

// set writes one key through apply.
func (s *Store) set(key, value []byte, opts *pebble.WriteOptions, t tier) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(key, value, nil); err != nil {
		return err
	}
	return s.apply(b, opts, t)
}

// fail marks the store failed (the first cause wins) and returns the error
// every call gets from now on.
func (s *Store) fail(cause error) error {
	f := &mailbox.FailedError{Path: s.path, Err: cause}
	if s.failed.CompareAndSwap(nil, f) {
		s.opts.Logger.Error("store failed a write and refuses every call until the core restarts", "store", s.path, "err", cause)
	}
	return s.failed.Load()
}
