package pebblestore

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Relaxed durability, and why it needs a file system wrapper: the engine's
// NoSync commit returns once the batch sits in the write-ahead log's memory
// buffer, before a write(2) has handed it to the kernel, so a kill -9 right
// after could lose it. graft's relaxed mode promises that a kill -9 loses
// nothing. So relaxed commits still use the engine's Sync path (which waits
// until the WAL bytes are written to the file), but the WAL files' Sync
// methods are made cheap no-ops that only mark the file dirty; walSyncer
// fsyncs dirty WAL files on an interval. A machine crash can lose what was
// written since the last tick, never more; a process crash loses nothing
// because the bytes are in the kernel's page cache.

// walCategory is the engine's disk-write category for WAL files.
const walCategory vfs.DiskWriteCategory = "pebble-wal"

type relaxedFS struct {
	vfs.FS
	syncer *walSyncer
}

func isWAL(name string, category vfs.DiskWriteCategory) bool {
	return category == walCategory || strings.HasSuffix(name, ".log")
}

func (fs relaxedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isWAL(name, category) {
		return f, err
	}
	return fs.syncer.track(f), nil
}

func (fs relaxedFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(newname, category) {
		return f, err
	}
	return fs.syncer.track(f), nil
}

// walSyncer owns the set of open WAL files and fsyncs the dirty ones.
type walSyncer struct {
	logger *slog.Logger
	mu     sync.Mutex
	files  map[*relaxedFile]struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func newWALSyncer(logger *slog.Logger) *walSyncer {
	return &walSyncer{logger: logger, files: make(map[*relaxedFile]struct{})}
}

func (s *walSyncer) track(f vfs.File) *relaxedFile {
	rf := &relaxedFile{File: f, syncer: s}
	s.mu.Lock()
	s.files[rf] = struct{}{}
	s.mu.Unlock()
	return rf
}

// start runs the periodic fsync until stop is called.
func (s *walSyncer) start(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.syncAll()
			}
		}
	}()
}

// stop ends the ticker and fsyncs what is still dirty.
func (s *walSyncer) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.syncAll()
}

func (s *walSyncer) syncAll() {
	s.mu.Lock()
	dirty := make([]*relaxedFile, 0, len(s.files))
	for f := range s.files {
		if f.takeDirty() {
			dirty = append(dirty, f)
		}
	}
	s.mu.Unlock()
	for _, f := range dirty {
		if err := f.File.SyncData(); err != nil {
			s.logger.Error("relaxed durability: fsync of write-ahead log failed", "err", err)
		}
	}
}

// relaxedFile is a WAL file whose syncs are deferred to the walSyncer.
type relaxedFile struct {
	vfs.File
	syncer *walSyncer
	mu     sync.Mutex
	dirty  bool
}

func (f *relaxedFile) markDirty() {
	f.mu.Lock()
	f.dirty = true
	f.mu.Unlock()
}

func (f *relaxedFile) takeDirty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dirty
	f.dirty = false
	return d
}

func (f *relaxedFile) Sync() error     { f.markDirty(); return nil }
func (f *relaxedFile) SyncData() error { f.markDirty(); return nil }
func (f *relaxedFile) SyncTo(int64) (bool, error) {
	f.markDirty()
	return false, nil
}

// Close fsyncs for real before closing: WAL rotation is rare, and a closed
// file can no longer be synced by the ticker.
func (f *relaxedFile) Close() error {
	f.syncer.mu.Lock()
	delete(f.syncer.files, f)
	f.syncer.mu.Unlock()
	if err := f.File.SyncData(); err != nil {
		_ = f.File.Close()
		return err
	}
	return f.File.Close()
}
