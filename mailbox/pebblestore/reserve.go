package pebblestore

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// reserveName is the store's reserve file: criticalReserve bytes kept
// allocated on its file system. The headroom the store keeps (space.go)
// is measured, so another process can still fill the disk to the last
// byte between two measurements; a write-ahead log or manifest write that
// then meets ENOSPC would stop the engine. guardFS gives such a write the
// reserve instead (the file is truncated, its blocks freed) and retries it
// once. The reserve is taken again once the disk has room for it.
const reserveName = "graft-reserve"

// reserveRetry is how often taking the reserve again is tried.
const reserveRetry = time.Second

// reserveFile is the reserve's state.
type reserveFile struct {
	path   string
	logger *slog.Logger

	mu     sync.Mutex
	held   bool
	failed time.Time // the last attempt to take it failed then
}

// holding reports whether the reserve is allocated.
func (r *reserveFile) holding() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// hold allocates the reserve; it reports whether it holds. Attempts that
// fail are not repeated more often than reserveRetry.
func (r *reserveFile) hold() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held || time.Since(r.failed) < reserveRetry {
		return r.held
	}
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		r.failed = time.Now()
		r.logger.Warn("cannot create the store's reserve file", "path", r.path, "err", err)
		return false
	}
	defer f.Close()
	err = unix.Fallocate(int(f.Fd()), 0, 0, criticalReserve)
	if errors.Is(err, unix.EOPNOTSUPP) {
		_, err = f.WriteAt(make([]byte, criticalReserve), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		r.failed = time.Now()
		_ = f.Truncate(0)
		return false
	}
	r.held = true
	return true
}

// release frees the reserve for a write that met a full disk; it reports
// whether there was one to free.
func (r *reserveFile) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.held {
		return false
	}
	r.held = false
	err := os.Truncate(r.path, 0)
	r.logger.Error("disk full under the store's write-ahead log: it used the store's reserve; free space on the disk", "path", r.path, "err", err)
	return err == nil
}
