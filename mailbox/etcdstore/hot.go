package etcdstore

import (
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// hotKeys remembers the last known value and mod revision of the small
// per-actor keys every write reads (record, epoch, head, cursor), so
// that a write's build can skip the read round trip. It is only a
// guess: the transaction's guard still compares each key's mod revision,
// so a stale entry costs one failed guard and a build on fresh reads,
// never a wrong write. Entries come from reads, from this process's
// committed writes (their revision is the transaction's) and from the
// watch of heads and cursors (other processes' writes).
type hotKeys struct {
	mu sync.Mutex
	m  map[string]readKV
}

func newHotKeys() *hotKeys { return &hotKeys{m: make(map[string]readKV)} }

// hot reports whether key is of a kind worth remembering.
func (s *Store) hot(key string) bool {
	for _, kind := range []string{kindHead, kindCursor, kindEpoch, kindActor} {
		if s.k.isKind(kind, key) {
			return true
		}
	}
	return false
}

func (h *hotKeys) get(key string) (readKV, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	kv, ok := h.m[key]
	return kv, ok
}

// set records key at mod (an absent key: mod 0), unless a newer one is
// known.
func (h *hotKeys) set(key string, kv readKV) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.m[key]; ok && old.mod > kv.mod && kv.mod != 0 {
		return
	}
	h.m[key] = kv
}

func (h *hotKeys) drop(keys []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		delete(h.m, k)
	}
}

// committed records what a transaction that committed at rev wrote.
func (s *Store) committed(ops []clientv3.Op, rev int64) {
	for _, op := range ops {
		k := string(op.KeyBytes())
		if !s.hot(k) {
			continue
		}
		switch {
		case op.IsPut():
			s.hotKeys.set(k, readKV{value: append([]byte(nil), op.ValueBytes()...), mod: rev})
		case op.IsDelete():
			s.hotKeys.drop([]string{k})
		}
	}
}

// waiters wakes, by name, the goroutines waiting for a change of an
// actor's cursor.
type waiters struct {
	mu sync.Mutex
	m  map[string]map[chan struct{}]struct{}
}

func newWaiters() *waiters { return &waiters{m: make(map[string]map[chan struct{}]struct{})} }

// add registers a waiter for name; done unregisters it.
func (w *waiters) add(name string) (woken <-chan struct{}, done func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.m[name] == nil {
		w.m[name] = make(map[chan struct{}]struct{})
	}
	w.m[name][ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.m[name], ch)
		if len(w.m[name]) == 0 {
			delete(w.m, name)
		}
		w.mu.Unlock()
	}
}

// wake wakes every waiter of name, without blocking.
func (w *waiters) wake(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.m[name] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
