package core

import (
	"strings"
	"sync"
)

// callResult is what a waiting Call learns when its message is committed.
type callResult struct {
	reply    []byte
	hasReply bool
	refusal  string // the handler's terminal error, if it refused
	err      error  // dead-lettered, or the actor is gone
}

// waiters routes committed replies to the Calls waiting for them, keyed by
// actor and message id. A waiter is registered before its message is
// enqueued, so a reply committed at once is never missed, and removed when
// its Call returns, so a caller that gives up leaks nothing.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan callResult
}

func waiterKey(actor, id string) string { return actor + "\x00" + id }

// add registers a waiter; the returned function removes it.
func (w *waiters) add(actor, id string) (<-chan callResult, func()) {
	ch := make(chan callResult, 1)
	k := waiterKey(actor, id)
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[string][]chan callResult)
	}
	w.m[k] = append(w.m[k], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[k]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, k)
		} else {
			w.m[k] = list
		}
	}
}

// deliver hands r to every waiter of (actor, id), without blocking.
func (w *waiters) deliver(actor, id string, r callResult) {
	w.mu.Lock()
	list := w.m[waiterKey(actor, id)]
	w.mu.Unlock()
	for _, ch := range list {
		select {
		case ch <- r:
		default:
		}
	}
}

// any reports whether anyone waits at all, so the hot path can skip the
// per-message lookups when nobody does.
func (w *waiters) any() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m) > 0
}

// failActor hands err to every waiter of actor (it was destroyed: no
// reply will ever come), without blocking.
func (w *waiters) failActor(actor string, err error) {
	prefix := waiterKey(actor, "")
	w.mu.Lock()
	var lists [][]chan callResult
	for k, list := range w.m {
		if strings.HasPrefix(k, prefix) {
			lists = append(lists, list)
		}
	}
	w.mu.Unlock()
	for _, list := range lists {
		for _, ch := range list {
			select {
			case ch <- callResult{err: err}:
			default:
			}
		}
	}
}
