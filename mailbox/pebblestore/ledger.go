package pebblestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// The WAL ledger, and why: the engine replays the write-ahead logs it finds
// in the store's folder and has no record of which ones should be there, so
// a log deleted behind its back simply loses its writes, and the store
// opened with them gone. graft keeps that record: ledgerFile lists every
// log the engine created and has not deleted, updated by guardFS as the
// engine creates, recycles and deletes them, and written atomically
// (temporary file, fsync, rename, fsync of the folder).
//
// The order of the updates makes a crash harmless: a log is listed before
// the engine can write to it, and unlisted before it is deleted or renamed,
// so a log that is listed and missing was removed by someone else. An
// unlisted log on disk is harmless (the engine deletes it if it is
// obsolete) and is adopted at the next open.
//
// If an update fails (a full disk, say), the ledger is deleted and kept off
// for the rest of the session: the next open then has nothing to check
// against and starts a new ledger, which is better than stopping the
// engine in the middle of a log rotation.
const ledgerFile = "graft-wals.json"

// ledgerV1 is the ledger's file format.
type ledgerV1 struct {
	Version int      `json:"version"`
	WALs    []string `json:"wals"`
}

// walLedger is the in-memory ledger. A nil *walLedger does nothing.
type walLedger struct {
	dir    string
	logger *slog.Logger

	mu   sync.Mutex
	wals map[string]bool
	off  bool
}

// loadLedger reads the store's ledger; found is false if there is none.
func loadLedger(dir string, logger *slog.Logger) (l *walLedger, found bool, err error) {
	l = &walLedger{dir: dir, logger: logger, wals: map[string]bool{}}
	b, err := readStoreFile(dir, ledgerFile)
	if errors.Is(err, fs.ErrNotExist) {
		return l, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the WAL ledger %s: %w", ledgerFile, err)
	}
	var f ledgerV1
	err = json.Unmarshal(b, &f)
	if err == nil && f.Version != 1 {
		err = fmt.Errorf("version %d is not one this graft reads", f.Version)
	}
	if err != nil {
		return nil, false, fmt.Errorf("the WAL ledger %s is damaged, so the store cannot tell whether its write-ahead logs are complete: %w", ledgerFile, err)
	}
	for _, w := range f.WALs {
		l.wals[w] = true
	}
	return l, true, nil
}

// missing returns the listed logs that are not on disk (present names the
// logs found there).
func (l *walLedger) missing(present []string) []string {
	var out []string
	for w := range l.wals {
		if !slices.Contains(present, w) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

// adopt lists the logs present on disk too and writes the ledger, before
// the engine opens.
func (l *walLedger) adopt(present []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range present {
		l.wals[w] = true
	}
	return l.saveLocked()
}

func (l *walLedger) add(path string) { l.update(filepath.Base(path), true) }

func (l *walLedger) remove(path string) { l.update(filepath.Base(path), false) }

func (l *walLedger) update(name string, listed bool) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.off || l.wals[name] == listed {
		return
	}
	if listed {
		l.wals[name] = true
	} else {
		delete(l.wals, name)
	}
	if err := l.saveLocked(); err != nil {
		l.off = true
		rmErr := os.Remove(filepath.Join(l.dir, ledgerFile))
		l.logger.Warn("cannot update the WAL ledger; a write-ahead log deleted behind the store's back will not be noticed at the next open",
			"store", l.dir, "err", err, "remove_err", rmErr)
	}
}

func (l *walLedger) saveLocked() error {
	f := ledgerV1{Version: 1, WALs: make([]string, 0, len(l.wals))}
	for w := range l.wals {
		f.WALs = append(f.WALs, w)
	}
	slices.Sort(f.WALs)
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return writeFileAtomic(l.dir, ledgerFile, b)
}

// listWALs returns the names of the write-ahead logs in dir, sorted.
func listWALs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list store %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") && e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}
