package pebblestore

import (
	"sync/atomic"
)

// The recent-message cache. A message is usually read by its actor a few
// hundred microseconds after it was written, while it still sits in the
// engine's memtable; yet an engine iterator for it costs more than the
// write did (building the merging iterator, loading every sstable whose
// bounds overlap the actor's keys, reading their index blocks): a CPU
// profile of the end-to-end benchmark put 30% of the core's time in Read.
// So the store keeps, next to each actor's counters, the encoded records
// it wrote for that actor and has not seen acked, and Read decodes them
// from memory, through the same decoder as records read from disk.
//
// Why the cache is exact. For every actor:
//
//	acked < seq <= uncachedThrough   may be on disk only (written before this
//	                                 Open, or when the cache was full)
//	uncachedThrough < seq <= visible in recent, or never written (an
//	                                 abandoned reservation, which the disk
//	                                 does not hold either)
//
// A record enters recent under a.mu in the same critical section that
// makes its seq visible (finishWrite), so Read never sees a visible seq
// before its record; it leaves when a commit acks it (Store.applyPlan)
// or the actor is removed. Read serves from memory only when its whole
// range lies above uncachedThrough, else it reads the engine as before.
//
// The cache is bounded by recentBudget bytes for the whole store: a record
// that does not fit is not cached and raises uncachedThrough, so a backlog
// larger than memory costs what it cost before, never more memory.
//
// No library does this: pebble's block cache holds sstable blocks, not the
// memtable, and a general LRU would not know which records are acked.

// recentBudget is how many bytes of encoded records the store keeps in
// memory at most (plus recentOverhead per record).
const recentBudget = 64 << 20

// recentOverhead is what a cached record costs besides its bytes (map
// entry and slice header).
const recentOverhead = 48

// recentCache is the store-wide account of cached bytes.
type recentCache struct {
	budget int64
	used   atomic.Int64
}

// admit reserves room for a record of n bytes, or reports that it does not
// fit.
func (c *recentCache) admit(n int) bool {
	cost := int64(n + recentOverhead)
	if c.used.Add(cost) > c.budget {
		c.used.Add(-cost)
		return false
	}
	return true
}

// release gives back the room of a record of n bytes.
func (c *recentCache) release(n int) { c.used.Add(-int64(n + recentOverhead)) }

// remember caches the record of seq just written for a, or marks it as on
// disk only. Callers hold a.mu.
func (s *Store) remember(a *actor, seq uint64, record []byte) {
	if record == nil || !s.recent.admit(len(record)) {
		a.uncachedThrough = max(a.uncachedThrough, seq)
		return
	}
	if a.recent == nil {
		a.recent = make(map[uint64][]byte)
	}
	a.recent[seq] = record
}

// forgetThrough drops a's cached records with seq in (from, through]: they
// are acked. Callers hold a.mu.
func (s *Store) forgetThrough(a *actor, from, through uint64) {
	if len(a.recent) == 0 {
		return
	}
	if through-from > uint64(len(a.recent)) {
		for seq, r := range a.recent {
			if seq > from && seq <= through {
				s.recent.release(len(r))
				delete(a.recent, seq)
			}
		}
	} else {
		for seq := from + 1; seq <= through; seq++ {
			if r, ok := a.recent[seq]; ok {
				s.recent.release(len(r))
				delete(a.recent, seq)
			}
		}
	}
	if len(a.recent) == 0 {
		a.recent = nil // an idle actor keeps no map
	}
}

// forgetAll drops every cached record of a. Callers hold a.mu.
func (s *Store) forgetAll(a *actor) { s.forgetThrough(a, 0, ^uint64(0)) }

// cachedRange returns the records of up to max messages of a in [lower,
// upper] from memory, or ok false when part of the range may be on disk
// only. Callers hold a.mu.
func (a *actor) cachedRange(lower, upper uint64, max int) (seqs []uint64, records [][]byte, ok bool) {
	if lower <= a.uncachedThrough {
		return nil, nil, false
	}
	for seq := lower; seq <= upper && len(records) < max; seq++ {
		if r, found := a.recent[seq]; found {
			seqs = append(seqs, seq)
			records = append(records, r)
		}
	}
	return seqs, records, true
}
