package pebblestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// cleanFlushTimeout bounds the flush of a clean shutdown; a store that
// cannot flush in time closes without the clean-shutdown marker.
const cleanFlushTimeout = 3 * time.Second

// Close waits for calls in progress, fsyncs what relaxed mode holds,
// flushes the engine's memtables, closes the engine, leaves the
// clean-shutdown marker and releases the lock. It is safe to call more
// than once.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	return s.release(true)
}

// release closes what Open opened. With clean set (a Close, not a failed
// Open) it leaves the clean-shutdown marker if the store could flush; if
// not, the next Open recovers the store as after a crash, which loses
// nothing either.
func (s *Store) release(clean bool) error {
	var errs []error
	close(s.closing)
	if s.db != nil {
		if s.syncer != nil {
			s.syncer.stop()
		}
		var marker *cleanMarker
		if clean {
			var err error
			if marker, err = s.prepareClean(); err != nil {
				s.opts.Logger.Warn("store closes without a clean-shutdown marker; the next start recovers it as after a crash",
					"store", s.path, "err", err)
			}
		}
		if err := s.closeEngine(); err != nil {
			errs = append(errs, fmt.Errorf("close store %s: %w", s.path, err))
			marker = nil
		}
		s.db = nil
		if marker != nil {
			if err := s.leaveClean(marker); err != nil {
				s.opts.Logger.Warn("cannot write the clean-shutdown marker; the next start recovers the store as after a crash",
					"store", s.path, "err", err)
			}
		}
	}
	if s.lock != nil {
		if err := s.lock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("release lock of store %s: %w", s.path, err))
		}
		s.lock = nil
	}
	return errors.Join(errs...)
}

// prepareClean flushes the memtables, so that the logs hold nothing the
// table files do not, and sums up the store's counters.
func (s *Store) prepareClean() (*cleanMarker, error) {
	if f := s.failed.Load(); f != nil {
		return nil, f
	}
	if !s.space.allows(criticalReserve, memTableSize) {
		return nil, errors.New("the disk is too full to flush the memtables")
	}
	done, err := s.db.AsyncFlush()
	if err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	t := time.NewTimer(cleanFlushTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return nil, fmt.Errorf("the flush did not finish within %s", cleanFlushTimeout)
	}
	c, err := s.storedCounters()
	if err != nil {
		return nil, err
	}
	return &cleanMarker{Version: cleanByID, Counters: c}, nil
}

// closeEngine closes pebble; a panic there (after a failed write) becomes
// an error.
func (s *Store) closeEngine() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine panicked while closing: %v", r)
		}
	}()
	return s.db.Close()
}

// leaveClean writes the marker with the logs as the closed engine left
// them.
func (s *Store) leaveClean(m *cleanMarker) error {
	wals, err := walSums(s.path)
	if err != nil {
		return err
	}
	m.ClosedAt, m.WALs = time.Now().UTC(), wals
	return writeClean(s.path, m)
}

func writeClean(dir string, m *cleanMarker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode the clean-shutdown marker: %w", err)
	}
	return writeFileAtomic(dir, cleanFile, b)
}

// verifyClean compares the loaded store with the clean-shutdown marker
// Open found, then removes the marker: from here on the store is open and
// a crash leaves it to crash recovery.
func (s *Store) verifyClean() error {
	if s.clean == nil {
		return nil
	}
	if err := s.clean.verifyCounters(s.loadedCounters(s.clean.Version)); err != nil {
		return &mailbox.CorruptError{Path: s.path, Err: err}
	}
	if err := removeFileDurably(s.path, cleanFile); err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	s.clean = nil
	return nil
}

// storedCounters sums up, as stored on disk, every actor's ack watermark
// and last sequence number (the way load rebuilds them) and the history.
func (s *Store) storedCounters() (counters, error) {
	last, err := s.lastSeqs(prefixQueue)
	if err != nil {
		return counters{}, fmt.Errorf("read the last message of every actor: %w", err)
	}
	return s.summarizeActors(cleanByID, func(a *actor) uint64 { return max(a.acked, last[a.id]) }), nil
}

// loadedCounters is storedCounters right after load, from memory: load
// has just rebuilt every actor's last sequence number from disk the same
// way (visible), so reading the queue again would only repeat it.
func (s *Store) loadedCounters(version int) counters {
	return s.summarizeActors(version, func(a *actor) uint64 { return a.visible })
}

// summarizeActors sums up every actor's ack watermark and last sequence
// number (last(a), called with a.mu held) and the history.
func (s *Store) summarizeActors(version int, last func(a *actor) uint64) counters {
	list := s.reg.all()
	out := make([]actorCounters, 0, len(list))
	for _, a := range list {
		a.mu.Lock()
		out = append(out, actorCounters{name: a.name, id: a.id, acked: a.acked, last: last(a)})
		a.mu.Unlock()
	}
	s.histMu.Lock()
	next := s.nextHist
	s.histMu.Unlock()
	return summarize(out, next, s.timers.size(), version)
}
