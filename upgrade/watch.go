package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/mailbox"
)

// Watch upgrades a behaviour when its source binary is rebuilt. It watches
// each source's folder (builds replace files by rename or write them in
// place), waits until the file has been quiet for Options.Debounce, and
// then upgrades if the file is a regular, executable file whose bytes
// differ from the running version (a file that is not executable is
// reported as such, with the chmod that fixes it). A half-written or
// broken binary fails the upgrade's handshake, and one another user could
// have written is refused (see Upgrade): either is reported and ignored,
// and the old version keeps serving. A watched folder that others may
// write is warned about. Watch returns once the watches are set; they end
// with ctx.
func (m *Manager) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch plugin binaries: %w", err)
	}
	m.mu.Lock()
	byPath := map[string]string{} // cleaned source path -> behaviour
	dirs := map[string]bool{}
	for b, src := range m.sources {
		abs, err := filepath.Abs(src)
		if err != nil {
			abs = src
		}
		byPath[filepath.Clean(abs)] = b
		dirs[filepath.Dir(abs)] = true
	}
	m.mu.Unlock()
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return fmt.Errorf("watch folder %s: %w", d, err)
		}
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o022 != 0 {
			m.log.Warn("watched folder is writable by other users: a binary they drop there is refused unless the config pins its sha256; `chmod go-w` it",
				"folder", d, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
	}
	go m.watchLoop(ctx, w, byPath)
	return nil
}

func (m *Manager) watchLoop(ctx context.Context, w *fsnotify.Watcher, byPath map[string]string) {
	defer w.Close()
	var mu sync.Mutex
	timers := map[string]*time.Timer{}
	defer func() {
		mu.Lock()
		for _, t := range timers {
			t.Stop()
		}
		mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			m.log.Error("watching plugin binaries", "err", err)
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Remove {
				continue // a build replacing the file creates it again
			}
			path := filepath.Clean(ev.Name)
			b, watched := byPath[path]
			if !watched {
				continue
			}
			mu.Lock()
			if t := timers[b]; t != nil {
				t.Reset(m.opts.Debounce)
			} else {
				timers[b] = time.AfterFunc(m.opts.Debounce, func() { m.rebuilt(ctx, b, path, 0) })
			}
			mu.Unlock()
		}
	}
}

// overBudgetRetries bounds how often a watched rebuild whose upgrade
// stopped for a passing reason (see passing) is tried again, each after
// twice the last wait.
const overBudgetRetries = 8

// rebuilt is called once a watched binary has been quiet for the
// debounce; tries counts the earlier attempts of the same rebuild.
func (m *Manager) rebuilt(ctx context.Context, behaviour, path string, tries int) {
	if ctx.Err() != nil {
		return
	}
	if why := notRunnable(path); why != "" {
		m.log.Warn("plugin binary changed but "+why+"; waiting for the next change", "behaviour", behaviour, "path", path)
		return
	}
	m.log.Info("plugin binary rebuilt; upgrading", "behaviour", behaviour, "path", path)
	_, err := m.Upgrade(ctx, behaviour, path)
	switch {
	case err == nil:
	case errors.Is(err, ErrBusy):
		// A dry run, or an upgrade asked for by hand, holds the behaviour:
		// try again once it is over rather than drop the rebuild.
		m.log.Debug("plugin binary rebuilt while another operation of the behaviour runs; upgrading after it", "behaviour", behaviour, "err", err)
		time.AfterFunc(m.opts.Debounce, func() { m.rebuilt(ctx, behaviour, path, tries) })
	case passing(err) && tries < overBudgetRetries:
		wait := m.opts.Debounce << (tries + 1)
		m.log.Warn("upgrade from the rebuilt binary stopped for a passing reason (an actor over the pause budget, not running at that instant, or claimed by another core of the cluster); trying again", "behaviour", behaviour, "in", wait, "err", err)
		time.AfterFunc(wait, func() { m.rebuilt(ctx, behaviour, path, tries+1) })
	case errors.Is(err, ErrDryRunFailed):
		m.log.Error("rebuilt plugin binary refused: its dry run failed (graft history); fix it and rebuild, or upgrade with --force", "behaviour", behaviour, "path", path)
	case errors.Is(err, ErrSameBinary):
		m.log.Info("rebuilt binary has the same bytes as the running version: not an upgrade", "behaviour", behaviour)
	case errors.Is(err, trust.ErrUntrusted):
		m.log.Error("rebuilt plugin binary refused: another user could have written it, so the core will not run it; the old version keeps serving", "behaviour", behaviour, "path", path, "err", err)
	default:
		m.log.Error("upgrade from the rebuilt binary failed; the old version keeps serving", "behaviour", behaviour, "path", path, "err", err)
	}
}

// passing says whether an upgrade stopped for a reason that may be gone
// at the next try: drains over the pause budget, an actor not running at
// that instant, or one another core of a cluster claimed mid-upgrade
// (its epoch fenced the migrated state's commit; nothing was written).
func passing(err error) bool {
	return errors.Is(err, ErrOverBudget) || errors.Is(err, core.ErrNotRunning) || errors.Is(err, mailbox.ErrFenced)
}

// notRunnable says why the file at path cannot be a plugin binary yet, or
// "" when it may be one.
func notRunnable(path string) string {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "is gone (a build may be replacing it)"
	case err != nil:
		return fmt.Sprintf("cannot be read (%v)", err)
	case !fi.Mode().IsRegular():
		return "is not a regular file"
	case fi.Size() == 0:
		return "is empty (a build may still be writing it)"
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Sprintf("is not executable (mode %04o): make it executable with `chmod +x %s`", fi.Mode().Perm(), path)
	}
	return ""
}
