package pebblestore

import (
	"encoding/binary"
	"math"
	"time"
)

// Key spaces. Every actor gets a numeric id when it is registered, so keys
// that belong to an actor are fixed-width ([prefix][id:8][seq:8]) and sort in
// sequence order; names appear only in the registry key. See the package doc
// for the full layout.
const (
	prefixFormat  = 'V' // V                      -> format marker
	prefixActor   = 'A' // A name                 -> actor record
	prefixState   = 'S' // S id                   -> state record
	prefixCursor  = 'C' // C id                   -> ack watermark (seq)
	prefixQueue   = 'Q' // Q id seq               -> message
	prefixFailure = 'F' // F id seq               -> failure record
	prefixIDIndex = 'I' // I id msgid             -> seq, sha256(payload)[:16]
	prefixIDOrder = 'i' // i id seq               -> msgid (eviction order)
	prefixOutcome = 'R' // R id msgid             -> outcome record
	prefixDead    = 'D' // D id seq               -> dead letter record
	prefixHistory = 'H' // H n                    -> upgrade record
	prefixTimer   = 'T' // T due owner timerid    -> timer record
	prefixTimerOf = 't' // t owner timerid        -> due (owner index)
	prefixHandled = 'W' // W id lastseq           -> a handled batch kept for dry runs (JSON)
)

// timerDeadBase is where the sequence numbers of a timer's dead letters
// start in its owner's dead-letter space ('D' id seq): a timer whose target
// is unknown has no place in any mailbox, so its message is kept under
// timerDeadBase + n (n counting per owner), above every sequence number a
// mailbox hands out, and leaves no hole in the owner's mailbox.
const timerDeadBase = 1 << 63

// formatMarker is stored under the 'V' key; a store without it (but with
// other keys) is not a graft store.
const formatMarker = "graft-mailbox/1"

var formatKey = []byte{prefixFormat}

// generationKey holds the open generation (8 bytes big-endian), which
// every Open bumps durably: the base of the epochs Claim hands out
// (actors.go).
var generationKey = []byte{prefixFormat, 'g'}

func actorKey(name string) []byte {
	k := make([]byte, 1+len(name))
	k[0] = prefixActor
	copy(k[1:], name)
	return k
}

// idKey builds [prefix][id].
func idKey(prefix byte, id uint64) []byte {
	k := make([]byte, 9, 17)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], id)
	return k
}

// seqKey builds [prefix][id][seq].
func seqKey(prefix byte, id, seq uint64) []byte {
	k := make([]byte, 17)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], id)
	binary.BigEndian.PutUint64(k[9:], seq)
	return k
}

// strKey builds [prefix][id][s].
func strKey(prefix byte, id uint64, s string) []byte {
	k := make([]byte, 9+len(s))
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], id)
	copy(k[9:], s)
	return k
}

// seqOf reads the sequence number out of a seqKey.
func seqOf(k []byte) uint64 { return binary.BigEndian.Uint64(k[9:17]) }

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // every byte was 0xff: no upper bound
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// timerKey builds [T][due:8][owner:8][timer id]: timers sort by due time.
func timerKey(due int64, owner uint64, id string) []byte {
	k := make([]byte, 17+len(id))
	k[0] = prefixTimer
	binary.BigEndian.PutUint64(k[1:], uint64(due))
	binary.BigEndian.PutUint64(k[9:], owner)
	copy(k[17:], id)
	return k
}

// dueNanos is the key form of a due time: Unix nanoseconds, clamped to
// [0, MaxInt64] (a due time before 1970, the zero time included, is simply
// due; UnixNano is undefined outside the years 1678..2262).
func dueNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}
