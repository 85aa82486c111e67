package pebblestore

import (
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/graft-host/graft/mailbox"
)

// Disk space, and why the store refuses writes before the disk is full.
//
// The engine cannot survive a failed write of its write-ahead log or of its
// manifest: the batch is already applied in memory when the log write
// fails, so it stops the process (Logger.Fatalf) rather than serve what is
// not on disk, and a half-failed log leaves every later commit hanging. So
// a full disk must never reach those writes. The store keeps headroom on
// its file system, in tiers:
//
//   - a critical reserve that only the write-ahead log, the manifest and
//     graft's own small files may use; besides, a file of that size
//     (reserve.go) is kept allocated and given up to a log or manifest
//     write that meets a full disk anyway (another process filled it);
//   - above it, room to flush the memtables: the engine's flushes may write
//     down to the critical reserve, so what is in memory can always reach
//     its table files;
//   - above that, the commit tier: commits, claims and failure counts are
//     admitted while this much is free (plus their size), so actors keep
//     draining their mailboxes (which frees space) after sends are refused;
//     compactions may write down to it;
//   - and the send tier, a little higher, for new data from outside
//     (Enqueue, Register, Requeue, history).
//
// A write refused by a tier fails at once with a *mailbox.DiskFullError and
// stores nothing. The engine's flushes and compactions refused by guardFS
// fail with an ENOSPC error that the engine reports (eventListener
// summarizes them) and retries; they succeed again once space returns, and
// so do graft's writes: free space is measured, nothing needs a restart.

// tier is how much headroom a write leaves behind.
type tier int

const (
	// tierCommit: progress that lets actors drain (Commit, Claim,
	// RecordFailure, Remove, SetStatus).
	tierCommit tier = iota
	// tierSend: new data from outside (Enqueue, Register, Requeue, history).
	tierSend
)

// Headroom sizes. memTableSize is set on the engine explicitly so that the
// flush room matches it.
const (
	memTableSize     = 4 << 20
	criticalReserve  = 1 << 20
	flushRoom        = memTableSize // the memtable being filled can reach its table file
	sendExtra        = 1 << 20
	spaceRecheckTime = 10 * time.Millisecond
)

// space measures the free space of the store's file system and admits or
// refuses writes by tier. Free space is read with statfs at most every
// spaceRecheckTime, and in between estimated by subtracting what guardFS
// has seen written; near a threshold it is read every time.
type space struct {
	path   string
	fs     vfs.FS
	logger *slog.Logger

	reserved atomic.Int64 // bytes of admitted writes not finished
	written  atomic.Int64 // bytes written since the last statfs
	full     [2]fullLog   // by tier

	mu      sync.Mutex
	checked time.Time
	free    uint64
	err     error // the last statfs failed

	reserve reserveFile
}

func newSpace(path string, fs vfs.FS, logger *slog.Logger) *space {
	s := &space{path: path, fs: fs, logger: logger}
	s.reserve.path, s.reserve.logger = filepath.Join(path, reserveName), logger
	return s
}

// String names the writes of the tier, for logs.
func (t tier) String() string {
	if t == tierSend {
		return "sends"
	}
	return "commits"
}

// threshold is the headroom tier t leaves free.
func (t tier) threshold() uint64 {
	if t == tierSend {
		return criticalReserve + flushRoom + sendExtra
	}
	return criticalReserve + flushRoom
}

// available returns the free bytes on the store's file system. When statfs
// fails it assumes plenty (and logs once): failing every write because the
// measurement failed would be worse than the risk it guards against.
func (s *space) available() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	est := s.estimateLocked()
	if time.Since(s.checked) < spaceRecheckTime && est > 2*tierSend.threshold() {
		return est
	}
	du, err := s.fs.GetDiskUsage(s.path)
	s.checked = time.Now()
	s.written.Store(0)
	if err != nil {
		if s.err == nil {
			s.logger.Warn("cannot measure free space of the store's file system; writes are not held back before it fills", "store", s.path, "err", err)
		}
		s.err = err
		s.free = 1 << 62
		return s.free
	}
	s.err = nil
	s.free = du.AvailBytes
	return s.free
}

func (s *space) estimateLocked() uint64 {
	w := uint64(max(s.written.Load(), 0))
	if w >= s.free {
		return 0
	}
	return s.free - w
}

// wrote records n bytes written (or preallocated) through guardFS.
func (s *space) wrote(n int64) {
	if n > 0 {
		s.written.Add(n)
	}
}

// admit reserves size bytes for a write of tier t, or refuses it with a
// *mailbox.DiskFullError. The returned release must be called once the
// write is over (done or failed).
func (s *space) admit(t tier, size int) (release func(), err error) {
	n := int64(size) + 512 // the engine's record and batch headers
	r := s.reserved.Add(n)
	free := s.available()
	need := t.threshold() + uint64(r)
	if free < need {
		s.reserved.Add(-n)
		s.full[t].refused(s, t, free, need)
		return nil, &mailbox.DiskFullError{Path: s.path, Free: free, Need: t.threshold() + uint64(n)}
	}
	if !s.reserve.holding() && free >= need+criticalReserve {
		s.reserve.hold()
	}
	s.full[t].admitted(s, t, free, need)
	return func() { s.reserved.Add(-n) }, nil
}

// fullLog logs when a tier starts refusing writes and when it accepts them
// again, once per run and at most every summaryInterval with the count of
// refusals in between, however often free space hovers around the
// threshold.
type fullLog struct {
	full    atomic.Bool
	mu      sync.Mutex
	logged  time.Time
	refusal int
}

func (l *fullLog) refused(s *space, t tier, free, need uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refusal++
	if l.full.Load() && time.Since(l.logged) < summaryInterval {
		return
	}
	l.full.Store(true)
	s.logger.Error("disk full: the store refuses "+t.String()+" until space is freed", "store", s.path,
		"free_bytes", free, "needed_bytes", need, "refusals", l.refusal)
	l.logged, l.refusal = time.Now(), 0
}

// admitted ends the run once there is clearly room again (a criticalReserve
// above the need, so that hovering at the threshold is one run).
func (l *fullLog) admitted(s *space, t tier, free, need uint64) {
	if !l.full.Load() || free < need+criticalReserve {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full.Swap(false) {
		s.logger.Info("disk space is back: the store accepts "+t.String()+" again", "store", s.path, "free_bytes", free)
	}
}

// allows says whether a background write of n bytes may go ahead while
// leaving floor bytes (plus the admitted writes in progress) free.
func (s *space) allows(floor uint64, n int) bool {
	free := s.available()
	return free >= floor+uint64(max(s.reserved.Load(), 0))+uint64(n)
}
