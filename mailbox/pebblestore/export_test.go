package pebblestore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// MountTmpfs lets the external tests mount a real tmpfs.
var MountTmpfs = mountTmpfs

// SetRecentBudget bounds s's recent-message cache to n bytes, so tests can
// fill it; call it before the store is used.
func SetRecentBudget(s *Store, n int64) { s.recent.budget = n }

// RecentBytes is how many bytes s's recent-message cache holds.
func RecentBytes(s *Store) int64 { return s.recent.used.Load() }

// Keys lists every key in s's engine, for tests that inspect what is
// stored.
func Keys(s *Store) ([][]byte, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][]byte
	for it.First(); it.Valid(); it.Next() {
		out = append(out, append([]byte(nil), it.Key()...))
	}
	return out, it.Error()
}

// ActorID returns the numeric id under which s keeps the actor's keys.
func ActorID(s *Store, name string) (uint64, error) {
	a, err := s.lookup(name)
	if err != nil {
		return 0, err
	}
	return a.id, nil
}

// CorruptTimer overwrites the record of a pending timer (owner "" for one
// set from outside) with bytes that do not decode, durably, as damage on
// disk would leave it; the in-memory index still holds the timer.
func CorruptTimer(s *Store, owner, id string) error {
	var ownerID uint64 = outsideOwner
	if owner != "" {
		a, err := s.lookup(owner)
		if err != nil {
			return err
		}
		ownerID = a.id
	}
	s.timers.mu.Lock()
	e := s.timers.byOwner[ownerID][id]
	s.timers.mu.Unlock()
	if e == nil {
		return fmt.Errorf("no timer %q of %q", id, owner)
	}
	return s.db.Set(timerKey(e.due, ownerID, id), []byte{0xff, 0xff, 0xff}, pebble.Sync)
}
