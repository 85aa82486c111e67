package pebblestore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// guardFS is the file system the engine writes through. It does two
// things the engine cannot do for itself:
//
//   - it holds back the engine's bulk writes (flushes, compactions) before
//     they eat the headroom that the write-ahead log and the manifest need
//     (see space.go), failing them with ENOSPC while space is still left;
//     the engine reports and retries them, so each refusal waits a little
//     first, which keeps a full disk from turning into a busy loop;
//   - it keeps the WAL ledger (ledger.go) of the write-ahead logs the
//     engine created and has not deleted, so that a log deleted behind the
//     store's back is named at the next open instead of its loss going
//     unnoticed.
type guardFS struct {
	vfs.FS
	space   *space
	ledger  *walLedger
	closing <-chan struct{}
}

// fileKind says how much headroom a file's writes must leave.
type fileKind int

const (
	kindCritical   fileKind = iota // WAL, manifest, options, markers, graft's files: never held back
	kindFlush                      // memtable flush output: may use the flush room
	kindCompaction                 // everything else: stops at the commit tier
)

// refusalPause is how long a held-back engine write waits before it fails.
const refusalPause = 250 * time.Millisecond

func classify(name string, category vfs.DiskWriteCategory) fileKind {
	base := filepath.Base(name)
	switch {
	case isWAL(name, category), category == "pebble-manifest",
		strings.HasPrefix(base, "MANIFEST-"), strings.HasPrefix(base, "OPTIONS-"),
		strings.HasPrefix(base, "marker."), strings.HasSuffix(base, ".dbtmp"),
		strings.HasPrefix(base, "graft"):
		return kindCritical
	case category == "pebble-memtable-flush":
		return kindFlush
	}
	return kindCompaction
}

func (k fileKind) floor() uint64 {
	switch k {
	case kindFlush:
		return criticalReserve
	case kindCompaction:
		return tierCommit.threshold()
	}
	return 0
}

// hold returns an ENOSPC error if a write of n bytes to a file of kind k
// must be held back, after a pause (cut short when the store closes).
func (g *guardFS) hold(k fileKind, name string, n int) error {
	if k == kindCritical || g.space.allows(k.floor(), n) {
		return nil
	}
	t := time.NewTimer(refusalPause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.closing:
	}
	return fmt.Errorf("graft holds back a write of %d bytes to %s to keep %d bytes free on the store's file system: %w",
		n, filepath.Base(name), k.floor(), syscall.ENOSPC)
}

func (g *guardFS) wrap(f vfs.File, name string, k fileKind) vfs.File {
	return &guardFile{File: f, g: g, name: name, kind: k}
}

// Create implements vfs.FS.
func (g *guardFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	k := classify(name, category)
	if err := g.hold(k, name, 0); err != nil {
		return nil, err
	}
	f, err := g.FS.Create(name, category)
	if err != nil {
		return f, err
	}
	if isWAL(name, category) {
		g.ledger.add(name)
	}
	return g.wrap(f, name, k), nil
}

// ReuseForWrite implements vfs.FS: the engine recycles an old log as a new
// one. The ledger forgets the old name before the rename (a crash in
// between leaves an unlisted file, which is harmless) and learns the new
// one before the engine can write to it.
func (g *guardFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	wal := isWAL(newname, category)
	if wal {
		g.ledger.remove(oldname)
	}
	f, err := g.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return f, err
	}
	if wal {
		g.ledger.add(newname)
	}
	return g.wrap(f, newname, classify(newname, category)), nil
}

// OpenReadWrite implements vfs.FS.
func (g *guardFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := g.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return f, err
	}
	return g.wrap(f, name, classify(name, category)), nil
}

// Remove implements vfs.FS. A log leaves the ledger before it leaves the
// disk, so a crash in between never makes a deleted log look lost.
func (g *guardFS) Remove(name string) error {
	if isWAL(name, "") {
		g.ledger.remove(name)
	}
	return g.FS.Remove(name)
}

// guardFile counts what is written (for the free-space estimate) and holds
// back bulk writes.
type guardFile struct {
	vfs.File
	g    *guardFS
	name string
	kind fileKind
}

func (f *guardFile) Write(p []byte) (int, error) {
	if err := f.g.hold(f.kind, f.name, len(p)); err != nil {
		return 0, err
	}
	n, err := f.File.Write(p)
	if f.useReserve(err) {
		var m int
		m, err = f.File.Write(p[n:])
		n += m
	}
	f.g.space.wrote(int64(n))
	return n, err
}

func (f *guardFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.g.hold(f.kind, f.name, len(p)); err != nil {
		return 0, err
	}
	n, err := f.File.WriteAt(p, off)
	if f.useReserve(err) {
		var m int
		m, err = f.File.WriteAt(p[n:], off+int64(n))
		n += m
	}
	f.g.space.wrote(int64(n))
	return n, err
}

// useReserve frees the store's reserve when a log or manifest write met a
// full disk, and says whether to retry it (see reserve.go).
func (f *guardFile) useReserve(err error) bool {
	return err != nil && f.kind == kindCritical && errors.Is(err, syscall.ENOSPC) && f.g.space.reserve.release()
}

// Preallocate skips the engine's preallocation of write-ahead logs: it
// reserves 110% of a memtable for every new log, and the engine keeps up to
// three logs for reuse besides the live ones, which on a small disk holds
// a third of it in blocks nobody writes, where the store's headroom
// accounting cannot see them. A log's blocks are allocated as it is
// written instead; reused logs keep theirs.
func (f *guardFile) Preallocate(off, length int64) error {
	if isWAL(f.name, "") {
		return nil
	}
	err := f.File.Preallocate(off, length)
	if err == nil {
		f.g.space.wrote(length)
	}
	return err
}
