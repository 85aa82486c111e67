package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graft-host/graft/internal/trust"
)

// ErrRunning is wrapped by Listen's error when another core owns the socket.
var ErrRunning = errors.New("another graft core is running")

// RunningError says which socket (and, when known, which process) is taken.
type RunningError struct {
	Socket string
	PID    int
}

// Error names the socket and the process holding it, and what to do.
func (e *RunningError) Error() string {
	who := ""
	if e.PID > 0 {
		who = fmt.Sprintf(" (pid %d)", e.PID)
	}
	return fmt.Sprintf("another graft core is running on %s%s: stop it first, or give this one another control.dir", e.Socket, who)
}

// Unwrap makes errors.Is(err, ErrRunning) hold.
func (e *RunningError) Unwrap() error { return ErrRunning }

// Listener is the control socket, owned by this process until Close.
type Listener struct {
	net.Listener
	path string
	lock *os.File
	once sync.Once
}

// Listen claims the control socket at path: the folder is created 0700
// (and refused when it, or a folder on its way, could be written by another
// user: whoever can write it can answer in the core's place), an
// advisory lock on path+".lock" makes this process the socket's only owner
// (the kernel drops it when the process dies, so a crashed core leaves
// nothing that blocks the next one), a stale socket file is replaced, and
// the new socket is created 0600 under a temporary name and renamed into
// place, so it is never reachable with wider permissions.
func Listen(path string) (*Listener, error) {
	if err := trust.EnsureDir(filepath.Dir(path), "control folder"); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("control socket lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := readPID(lock)
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &RunningError{Socket: path, PID: pid}
		}
		return nil, fmt.Errorf("lock control socket %s: %w", path, err)
	}
	l, err := listenLocked(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	_ = lock.Truncate(0)
	_, _ = lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Listener{Listener: l, path: path, lock: lock}, nil
}

// listenLocked creates the socket; the caller holds the lock, so a socket
// file already at path belongs to a dead core (unless a process that does
// not take the lock answers on it, which is refused too).
func listenLocked(path string) (net.Listener, error) {
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, &RunningError{Socket: path}
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover of a core that died while listening
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // Close removes the final name, below
	fail := func(err error) (net.Listener, error) {
		l.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(fmt.Errorf("control socket permissions: %w", err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("control socket %s: %w", path, err))
	}
	return l, nil
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return pid
}

// Path is the socket's path.
func (l *Listener) Path() string { return l.path }

// Close stops listening, removes the socket file and releases the lock.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		err = l.Listener.Close()
		_ = os.Remove(l.path)
		_ = l.lock.Truncate(0)
		_ = l.lock.Close()
	})
	return err
}
