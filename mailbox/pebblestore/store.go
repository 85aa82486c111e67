package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/graft-host/graft/mailbox"
)

// Store is the embedded mailbox.Store on pebble. Create it with Open; it is
// safe for concurrent use.
type Store struct {
	path      string
	opts      mailbox.Options
	db        *pebble.DB
	lock      *os.File
	syncer    *walSyncer // nil in sync mode
	writeOpts *pebble.WriteOptions
	space     *space
	ledger    *walLedger
	errs      *errorSummary
	recent    *recentCache  // records of unacked messages, for Read (recent.go)
	clean     *cleanMarker  // the clean-shutdown marker Open found, until verified
	closing   chan struct{} // closed when Close begins

	// life is held shared by every call and exclusively by Close, so Close
	// waits for calls in progress and later calls see closed.
	life   sync.RWMutex
	closed atomic.Bool

	reg *registry // the actors, and those being created (registry.go)

	timers *timerIndex // pending timers (timerindex.go)
	// fireMu serializes FireDue, and Remove with it, so a timer is never
	// fired twice and never written for an actor being removed.
	fireMu sync.Mutex

	histMu   sync.Mutex
	nextHist uint64

	// epochBase is this open's generation << 32: every epoch Claim hands
	// out is above it, so above every epoch of an earlier open.
	epochBase uint64

	corrupt atomic.Pointer[mailbox.CorruptError] // first damage the engine reported
	failed  atomic.Pointer[mailbox.FailedError]  // the engine failed a write: refuse everything
}

var _ mailbox.Store = (*Store)(nil)

// Open opens (creating if needed) the store in directory path. It fails at
// once with a *mailbox.InUseError if another process has it open, and with
// a *mailbox.CorruptError naming the path and the file at fault if its
// files cannot be read, or show damage or loss (see the package doc's
// corruption policy); in those cases nothing on disk is modified.
func Open(path string, opts mailbox.Options) (_ *Store, err error) {
	opts = opts.WithDefaults()
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("create store directory %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("store %s is not a directory: give the store its own folder", path)
	}
	lock, err := acquireLock(path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:      path,
		opts:      opts,
		lock:      lock,
		writeOpts: pebble.Sync,
		space:     newSpace(path, vfs.Default, opts.Logger),
		errs:      newErrorSummary(opts.Logger, path),
		recent:    &recentCache{budget: recentBudget},
		closing:   make(chan struct{}),
		reg:       newRegistry(0),
		timers:    newTimerIndex(),
		nextHist:  1,
	}
	defer func() {
		if err != nil {
			_ = s.release(false)
		}
	}()
	if err := s.checkFiles(); err != nil {
		return nil, err
	}
	s.space.reserve.hold() // on a full disk, taken later (space.admit)
	if err := s.openEngine(s.engineOptions()); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.corruption(); err != nil {
		return nil, err
	}
	if err := s.verifyClean(); err != nil {
		return nil, err
	}
	if err := s.nextGeneration(); err != nil {
		return nil, err
	}
	if s.syncer != nil {
		s.syncer.start(opts.SyncInterval)
	}
	return s, nil
}

// engineOptions configures pebble for graft: the format whose log chunks
// record how far the log was synced (so damage can be told from a torn
// tail), graft's event listener and logger, and the file system stack
// (guardFS for headroom and the WAL ledger, relaxedFS in relaxed mode).
func (s *Store) engineOptions() *pebble.Options {
	var fs vfs.FS = &guardFS{FS: vfs.Default, space: s.space, ledger: s.ledger, closing: s.closing}
	if s.opts.Durability == mailbox.DurabilityRelaxed {
		s.syncer = newWALSyncer(s.opts.Logger)
		fs = relaxedFS{FS: fs, syncer: s.syncer}
	}
	opts := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatWALSyncChunks,
		MemTableSize:       memTableSize,
		Logger:             pebbleLogger{l: s.opts.Logger, errs: s.errs},
		// The engine's default reaction to a damaged file is to exit the
		// process. graft reports it instead: reads of the damaged range
		// fail with an error, and Open refuses a store found damaged.
		EventListener: s.eventListener(),
	}
	// Bloom filters (10 bits a key, about 1% false positives) in every
	// level: a point read of a key that does not exist (the state of an
	// actor that has none yet, an idempotency id never seen) otherwise
	// reads an index block of every table in its way; it was 8% of the
	// CPU of first sends to new virtual actors. L1 and below inherit L0's.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	return opts
}

// checkFiles applies the corruption policy before the engine touches the
// files: after a clean shutdown every log must be as it was left; after a
// crash every log the ledger lists must exist and the newest may end in a
// torn write but not in damage followed by synced records.
func (s *Store) checkFiles() error {
	corrupt := func(err error) error { return &mailbox.CorruptError{Path: s.path, Err: err} }
	marker, err := readClean(s.path)
	if err != nil {
		return corrupt(err)
	}
	ledger, found, err := loadLedger(s.path, s.opts.Logger)
	if err != nil {
		return corrupt(err)
	}
	present, err := listWALs(s.path)
	if err != nil {
		return err
	}
	switch {
	case marker != nil && !marker.WALsVerified:
		if err := marker.verifyWALs(s.path); err != nil {
			return corrupt(err)
		}
		// The engine changes the logs as it opens: remember that they
		// were verified, so that a later refusal stays about the counters.
		marker.WALs, marker.WALsVerified = nil, true
		if err := writeClean(s.path, marker); err != nil {
			return err
		}
	case marker == nil:
		if missing := ledger.missing(present); found && len(missing) > 0 {
			return corrupt(fmt.Errorf("write-ahead log %s is missing: the store created it and did not delete it, so the writes it holds are lost", strings.Join(missing, ", ")))
		}
		if err := checkNewestWAL(s.path); err != nil {
			return corrupt(err)
		}
	}
	s.clean = marker
	if err := s.roomToOpen(marker != nil, present); err != nil {
		return err
	}
	if err := ledger.adopt(present); err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	s.ledger = ledger
	return nil
}

// roomToOpen refuses to open on a disk without room: the engine replays
// the logs into table files as it opens and waits for that, so on a disk
// without room for them it would wait until space is freed. After a clean
// shutdown there is nothing to replay; after a crash, at most the logs.
func (s *Store) roomToOpen(clean bool, present []string) error {
	need := tierCommit.threshold()
	if !clean {
		for _, w := range present {
			if fi, err := os.Stat(filepath.Join(s.path, w)); err == nil {
				need += uint64(fi.Size())
			}
		}
	}
	if free := s.space.available(); free < need {
		return &mailbox.DiskFullError{Path: s.path, Free: free, Need: need}
	}
	return nil
}

// openEngine opens pebble, turning its errors and panics on damaged files
// into one CorruptError that names the store.
func (s *Store) openEngine(po *pebble.Options) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("engine panicked while opening: %v", r)}
		}
	}()
	db, err := pebble.Open(s.path, po)
	if err != nil {
		return &mailbox.CorruptError{Path: s.path, Err: describeOpenError(s.path, err)}
	}
	s.db = db
	return nil
}

// load checks the format marker and rebuilds the in-memory view of every
// actor (sequence counters, ack watermark, pending failures, dead-letter
// count) and the timer index from disk.
func (s *Store) load() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("engine panicked while reading: %v", r)}
		}
	}()
	marker, closer, err := s.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		empty, err := s.isEmpty()
		if err != nil {
			return &mailbox.CorruptError{Path: s.path, Err: err}
		}
		if !empty {
			return &mailbox.CorruptError{Path: s.path, Err: errors.New("it holds data but no graft format marker")}
		}
		if err := s.set(formatKey, []byte(formatMarker), pebble.Sync, tierSend); err != nil {
			return fmt.Errorf("initialise store %s: %w", s.path, err)
		}
	case err != nil:
		return &mailbox.CorruptError{Path: s.path, Err: err}
	default:
		ok := bytes.Equal(marker, []byte(formatMarker))
		got := string(marker)
		_ = closer.Close()
		if !ok {
			return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("format marker %q, want %q", got, formatMarker)}
		}
	}
	if err := s.loadActors(); err != nil {
		return &mailbox.CorruptError{Path: s.path, Err: err}
	}
	if err := s.loadTimers(); err != nil {
		return &mailbox.CorruptError{Path: s.path, Err: err}
	}
	last, err := s.lastKey([]byte{prefixHistory})
	if err != nil {
		return &mailbox.CorruptError{Path: s.path, Err: err}
	}
	if last != nil {
		s.nextHist = seqOfHistory(last) + 1
	}
	return nil
}

func (s *Store) isEmpty() (bool, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	defer it.Close()
	return !it.First(), it.Error()
}

// lastKey returns a copy of the greatest key with the given prefix, or nil.
func (s *Store) lastKey(prefix []byte) ([]byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.Last() {
		return nil, it.Error()
	}
	return append([]byte(nil), it.Key()...), nil
}

// reportCorruption is the engine's hook for a damaged file.
func (s *Store) reportCorruption(info pebble.DataCorruptionInfo) {
	err := &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("file %s: %w", info.Path, info.Details)}
	s.opts.Logger.Error("store file is damaged", "store", s.path, "file", info.Path, "err", info.Details)
	s.corrupt.CompareAndSwap(nil, err)
}

// corruption returns the first damage the engine reported, if any.
func (s *Store) corruption() error {
	if err := s.corrupt.Load(); err != nil {
		return err
	}
	return nil
}

// enter marks the start of a call; it fails once the store is closed, or
// once its engine failed a write.
func (s *Store) enter() error {
	s.life.RLock()
	if s.closed.Load() {
		s.life.RUnlock()
		return mailbox.ErrClosed
	}
	if f := s.failed.Load(); f != nil {
		s.life.RUnlock()
		return f
	}
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

// Path returns the store's directory.
func (s *Store) Path() string { return s.path }

// Metrics exposes the engine's metrics (disk usage, compactions, WAL) for
// benchmarks and operators.
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }

// Compact asks the engine to compact the whole key space now, which drops
// the tombstones acks left behind. Normal operation never needs it (the
// engine compacts in the background); benchmarks use it to measure the
// space a settled store takes.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flush store %s: %w", s.path, err)
	}
	return s.db.Compact(ctx, []byte{0}, []byte{0xff}, true)
}
