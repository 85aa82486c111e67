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
)

// Watch upgrades a behaviour when its source binary is rebuilt. It watches
// each source's folder (builds replace files by rename or write them in
// place), waits until the file has been quiet for Options.Debounce, and
// then upgrades if the file is a regular, executable file whose bytes
// differ from the running version. A half-written or broken binary fails
// the upgrade's handshake: it is reported and ignored, and the old version
// keeps serving. Watch returns once the watches are set; they end with ctx.
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
				timers[b] = time.AfterFunc(m.opts.Debounce, func() { m.rebuilt(ctx, b, path) })
			}
			mu.Unlock()
		}
	}
}

// rebuilt is called once a watched binary has been quiet for the debounce.
func (m *Manager) rebuilt(ctx context.Context, behaviour, path string) {
	if ctx.Err() != nil {
		return
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 || fi.Size() == 0 {
		m.log.Info("plugin binary changed but is not a runnable file yet; waiting for the next change", "behaviour", behaviour, "path", path)
		return
	}
	m.log.Info("plugin binary rebuilt; upgrading", "behaviour", behaviour, "path", path)
	_, err = m.Upgrade(ctx, behaviour, path)
	switch {
	case err == nil:
	case errors.Is(err, ErrSameBinary):
		m.log.Info("rebuilt binary has the same bytes as the running version: not an upgrade", "behaviour", behaviour)
	default:
		m.log.Error("upgrade from the rebuilt binary failed; the old version keeps serving", "behaviour", behaviour, "path", path, "err", err)
	}
}
