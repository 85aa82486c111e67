package pebblestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/mailbox"
)

// lockFileName is graft's own lock, beside the engine's: it carries the
// owner's pid so a second process gets a useful error at once instead of
// the engine's bare "resource temporarily unavailable".
const lockFileName = "graft.lock"

// acquireLock takes an exclusive, non-blocking flock on dir/graft.lock and
// writes our pid into it. The kernel drops the lock when the process dies,
// however it dies, so a crashed core never leaves a stale lock behind.
func acquireLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	f, err := root.OpenFile(lockFileName, os.O_RDWR|os.O_CREATE, 0o600)
	_ = root.Close()
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid := readPID(f)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &mailbox.InUseError{Path: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("write pid to %s: %w", path, err)
		}
	}
	return f, nil
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return 0
	}
	return pid
}
