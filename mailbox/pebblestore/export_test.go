package pebblestore

// MountTmpfs lets the external tests mount a real tmpfs.
var MountTmpfs = mountTmpfs

// SetRecentBudget bounds s's recent-message cache to n bytes, so tests can
// fill it; call it before the store is used.
func SetRecentBudget(s *Store, n int64) { s.recent.budget = n }

// RecentBytes is how many bytes s's recent-message cache holds.
func RecentBytes(s *Store) int64 { return s.recent.used.Load() }
