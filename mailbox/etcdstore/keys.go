package etcdstore

import (
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Key kinds: one letter after the store's prefix, then the actor name,
// then (for per-message and per-id keys) a NUL and the rest. Actor names
// never hold a control character (mailbox.CheckActorName), so the NUL
// ends a name without ambiguity and an actor's keys of one kind are one
// contiguous range.
const (
	kindMarker   = "v"
	kindActor    = "a/"
	kindEpoch    = "e/"
	kindHead     = "n/"
	kindCursor   = "c/"
	kindState    = "s/"
	kindQueue    = "q/"
	kindID       = "i/"
	kindIDBySeq  = "j/"
	kindDead     = "d/"
	kindTimer    = "t/"
	kindHandled  = "w/"
	kindHistory  = "h/"
	kindHistNext = "H"
)

// keys builds the store's keys under one prefix.
type keys struct{ prefix string }

func (k keys) marker() string              { return k.prefix + kindMarker }
func (k keys) actor(name string) string    { return k.prefix + kindActor + name }
func (k keys) epoch(name string) string    { return k.prefix + kindEpoch + name }
func (k keys) head(name string) string     { return k.prefix + kindHead + name }
func (k keys) cursor(name string) string   { return k.prefix + kindCursor + name }
func (k keys) state(name string) string    { return k.prefix + kindState + name }
func (k keys) historyNext() string         { return k.prefix + kindHistNext }
func (k keys) history(id uint64) string    { return k.prefix + kindHistory + hex16(id) }
func (k keys) of(kind, name string) string { return k.prefix + kind + name + "\x00" }

// seqKey is an actor's key of kind at seq (queue, dead letters, ids by
// seq, handled batches): hex, so that keys sort in sequence order.
func (k keys) seqKey(kind, name string, seq uint64) string { return k.of(kind, name) + hex16(seq) }

// idKey is the idempotency record of message id msgID.
func (k keys) idKey(name, msgID string) string { return k.of(kindID, name) + msgID }

// timer is the owner's pending timer id.
func (k keys) timer(owner, id string) string { return k.of(kindTimer, owner) + id }

// outside is a timer set from outside any actor (Schedule) for to: owner
// "" (no actor has that name), then the target and the id.
func (k keys) outside(to, id string) string { return k.outsideOf(to) + id }

// outsideOf is the prefix of the timers set from outside for to.
func (k keys) outsideOf(to string) string { return k.of(kindTimer, "") + to + "\x00" }

func hex16(n uint64) string { return fmt.Sprintf("%016x", n) }

// splitKey returns the name and the rest of a key of kind (rest is "" for
// the per-actor keys a, e, n, c and s).
func (k keys) splitKey(kind, key string) (name, rest string, ok bool) {
	s, found := strings.CutPrefix(key, k.prefix+kind)
	if !found {
		return "", "", false
	}
	name, rest, _ = strings.Cut(s, "\x00")
	return name, rest, true
}

// seqOf parses the hex sequence number that ends a seq key.
func seqOf(rest string) (uint64, error) { return strconv.ParseUint(rest, 16, 64) }

// isKind reports whether key is of kind.
func (k keys) isKind(kind, key string) bool {
	return len(key) > len(k.prefix)+len(kind) && key[:len(k.prefix)+len(kind)] == k.prefix+kind
}

// prefixEnd is the end of the range of every key that starts with p.
func prefixEnd(p string) string { return clientv3.GetPrefixRangeEnd(p) }
