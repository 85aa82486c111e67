package etcdstore

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// cache is what Stats, Backlog and NextTimer answer from without a round
// trip: each actor's head and cursor, and the pending timers in due
// order. This process's writes move it as soon as they commit; other
// processes' writes reach it through the watch. Every entry carries the
// etcd revision it was read at, and an older value never replaces a
// newer one, so the two paths can arrive in either order. Deleted
// entries stay as tombstones until the watch has passed their revision.
type cache struct {
	mu      sync.Mutex
	actors  map[string]*counters
	timers  map[string]*timerEntry // by timer key
	due     timerHeap
	watched int64 // revision up to which the watch has delivered
}

// counters are one actor's cached head and cursor.
type counters struct {
	exists  bool
	headRev int64
	last    uint64
	curRev  int64
	acked   uint64
	dead    uint64
}

// timerEntry is one pending timer (or the tombstone of a fired one).
type timerEntry struct {
	key       string
	owner, id string
	due       time.Time
	rev       int64
	deleted   bool
}

type heapItem struct {
	due time.Time
	key string
	rev int64
}

type timerHeap []heapItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].key < h[j].key
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(heapItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newCache() *cache {
	return &cache{actors: make(map[string]*counters), timers: make(map[string]*timerEntry)}
}

func (c *cache) counter(name string) *counters {
	a := c.actors[name]
	if a == nil {
		a = &counters{}
		c.actors[name] = a
	}
	return a
}

// setHead records an actor's head (last sequence number) at rev, or its
// removal (deleted); it reports whether last moved forward.
func (c *cache) setHead(name string, last uint64, rev int64, deleted bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.counter(name)
	if rev <= a.headRev {
		return false
	}
	a.headRev = rev
	if deleted {
		a.exists, a.last, a.acked, a.dead = false, 0, 0, 0
		return false
	}
	moved := !a.exists || last > a.last
	a.exists, a.last = true, last
	return moved
}

// setCursor records an actor's cursor at rev.
func (c *cache) setCursor(name string, cur cursorRecord, rev int64, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.counter(name)
	if rev <= a.curRev {
		return
	}
	a.curRev = rev
	if deleted {
		a.acked, a.dead = 0, 0
		return
	}
	a.acked, a.dead = cur.Acked, cur.Dead
}

// get returns a copy of an actor's counters.
func (c *cache) get(name string) (counters, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.actors[name]
	if !ok || !a.exists {
		return counters{}, false
	}
	return *a, true
}

// setTimer records a pending timer at rev, or its deletion.
func (c *cache) setTimer(key, owner, id string, due time.Time, rev int64, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.timers[key]
	if e != nil && rev <= e.rev {
		return
	}
	if e == nil {
		e = &timerEntry{key: key, owner: owner, id: id}
		c.timers[key] = e
	}
	e.rev, e.deleted, e.due = rev, deleted, due
	if !deleted {
		heap.Push(&c.due, heapItem{due: due, key: key, rev: rev})
	}
}

// live reports whether a heap item is still the current pending timer.
func (c *cache) live(it heapItem) bool {
	e := c.timers[it.key]
	return e != nil && !e.deleted && e.rev == it.rev
}

// next returns the earliest pending timer's due time.
func (c *cache) next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.due.Len() > 0 {
		if c.live(c.due[0]) {
			return c.due[0].due, true
		}
		heap.Pop(&c.due)
	}
	return time.Time{}, false
}

// dueBy returns up to max pending timers due at or before now, earliest
// first, without removing them: they leave when their deletion commits.
func (c *cache) dueBy(now time.Time, max int) []timerEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []timerEntry
	var keep []heapItem
	for c.due.Len() > 0 && len(out) < max {
		it := c.due[0]
		if !c.live(it) {
			heap.Pop(&c.due)
			continue
		}
		if it.due.After(now) {
			break
		}
		heap.Pop(&c.due)
		keep = append(keep, it)
		out = append(out, *c.timers[it.key])
	}
	for _, it := range keep {
		heap.Push(&c.due, it)
	}
	return out
}

// advance notes that the watch delivered everything up to rev, and drops
// the tombstones it has passed.
func (c *cache) advance(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev <= c.watched {
		return
	}
	c.watched = rev
	for k, e := range c.timers {
		if e.deleted && e.rev <= rev {
			delete(c.timers, k)
		}
	}
}

// backlog lists the actors with unacked messages.
func (c *cache) backlog() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name, a := range c.actors {
		if a.exists && a.last > a.acked {
			out = append(out, name)
		}
	}
	return out
}

// loadCache reads every head, cursor and timer at one revision, which it
// returns so the watch starts right after it.
func (s *Store) loadCache(ctx context.Context) (*cache, int64, error) {
	c := newCache()
	var rev int64
	load := func(kind string, fn func(key string, value []byte, mod int64) error) error {
		var err error
		rev, err = s.rangeAll(ctx, s.k.prefix+kind, rev, fn)
		return err
	}
	err := load(kindHead, func(key string, v []byte, mod int64) error {
		name, _, _ := s.k.splitKey(kindHead, key)
		last, err := s.decodeUint(key, v)
		if err != nil {
			return err
		}
		c.setHead(name, last, mod, false)
		return nil
	})
	if err == nil {
		err = load(kindCursor, func(key string, v []byte, mod int64) error {
			name, _, _ := s.k.splitKey(kindCursor, key)
			var cur cursorRecord
			if err := s.decode(key, v, &cur); err != nil {
				return err
			}
			c.setCursor(name, cur, mod, false)
			return nil
		})
	}
	if err == nil {
		err = load(kindTimer, func(key string, v []byte, mod int64) error {
			return s.cacheTimer(c, key, v, mod)
		})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load the store's counters: %w", err)
	}
	c.watched = rev
	return c, rev, nil
}

func (s *Store) cacheTimer(c *cache, key string, v []byte, mod int64) error {
	owner, id, _ := s.k.splitKey(kindTimer, key)
	var tr timerRecord
	if err := s.decode(key, v, &tr); err != nil {
		return err
	}
	c.setTimer(key, owner, id, tr.Due, mod, false)
	return nil
}

// rangePage is how many keys one read of a long range returns.
const rangePage = 1000

// rangeAll calls fn with every key under prefix, in pages, all read at
// one revision (rev, or the current one if 0), which it returns.
func (s *Store) rangeAll(ctx context.Context, prefix string, rev int64, fn func(key string, value []byte, mod int64) error) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(rangePage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, from, opts...)
		if err != nil {
			return 0, s.wrap("read "+prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(string(kv.Key), kv.Value, kv.ModRevision); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// applyEvent moves the cache by one watched event.
func (s *Store) applyEvent(ev *clientv3.Event) {
	key, mod := string(ev.Kv.Key), ev.Kv.ModRevision
	deleted := ev.Type == mvccpb.DELETE // a delete's ModRevision is the deletion's
	if s.hot(key) {
		if deleted {
			s.hotKeys.drop([]string{key})
		} else {
			s.hotKeys.set(key, readKV{value: ev.Kv.Value, mod: mod})
		}
	}
	switch {
	case s.k.isKind(kindHead, key):
		name, _, _ := s.k.splitKey(kindHead, key)
		last, err := s.decodeUint(key, ev.Kv.Value)
		if err != nil && !deleted {
			s.opts.Logger.Warn("etcd store: unreadable head", "err", err)
			return
		}
		if s.cache.setHead(name, last, mod, deleted) && s.opts.Notify != nil {
			s.opts.Notify(name, last)
		}
	case s.k.isKind(kindCursor, key):
		name, _, _ := s.k.splitKey(kindCursor, key)
		var cur cursorRecord
		if !deleted {
			if err := s.decode(key, ev.Kv.Value, &cur); err != nil {
				s.opts.Logger.Warn("etcd store: unreadable cursor", "err", err)
				return
			}
		}
		s.cache.setCursor(name, cur, mod, deleted)
		s.cursorWaiters.wake(name)
	case s.k.isKind(kindActor, key):
		if !deleted && ev.Kv.CreateRevision == mod {
			s.createdElsewhere(key, ev.Kv.Value, mod)
		}
	case s.k.isKind(kindTimer, key):
		defer s.cache.advance(mod - 1)
		if deleted {
			owner, id, _ := s.k.splitKey(kindTimer, key)
			s.cache.setTimer(key, owner, id, time.Time{}, mod, true)
			return
		}
		if err := s.cacheTimer(s.cache, key, ev.Kv.Value, mod); err != nil {
			s.opts.Logger.Warn("etcd store: unreadable timer", "err", err)
		}
	}
}

// createdElsewhere calls Created for an actor made at run time by
// another process on the same prefix (a spawn or a virtual first send on
// another core of a cluster), so that every core knows every actor.
func (s *Store) createdElsewhere(key string, value []byte, rev int64) {
	name, _, _ := s.k.splitKey(kindActor, key)
	var rec actorRecord
	if s.decode(key, value, &rec) != nil || rec.Origin == "" {
		return // unreadable, or a configured actor (each core registers those)
	}
	if s.creations.saw(name, rec.Behaviour, rev) {
		s.opts.Created(name, rec.Behaviour)
	}
}
