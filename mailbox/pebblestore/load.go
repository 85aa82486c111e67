package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Loading the registry. Open rebuilds every actor's counters from disk;
// with a million registered actors, a handful of seeks per actor (its ack
// cursor, its state, its last message, its oldest idempotency id, its
// failures and dead letters) took over ten seconds. Instead each key
// space is read once, in key order, for all actors together: a space that
// holds one key per actor (cursors, states) is scanned; a space that
// holds many per actor (the queue, the idempotency order) is walked with
// two seeks per actor that has keys there and none for the others.
// Strings that most actors share (behaviour names, module versions) are
// interned, so that an idle actor's memory is its own name and counters.

// loadActors rebuilds every actor's counters from disk.
func (s *Store) loadActors() error {
	byID, err := s.loadRecords()
	if err != nil {
		return err
	}
	at := func(k []byte) *actor { return byID[binary.BigEndian.Uint64(k[1:9])] }
	err = s.scan([]byte{prefixCursor}, func(k, v []byte) error {
		if a := at(k); a != nil {
			if len(v) != 8 {
				return fmt.Errorf("actor %q: ack cursor is %d bytes, want 8", a.name, len(v))
			}
			a.acked = seqOfValue(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.loadStateVersions(at); err != nil {
		return err
	}
	last, err := s.lastSeqs(prefixQueue)
	if err != nil {
		return err
	}
	oldestID, err := s.firstSeqs(prefixIDOrder)
	if err != nil {
		return err
	}
	for id, a := range byID {
		l := max(a.acked, last[id])
		a.nextSeq, a.visible = l+1, l
		a.uncachedThrough = l // what is queued now is on disk only
		a.evicted = a.acked
		if first, ok := oldestID[id]; ok {
			a.evicted = first - 1
		}
	}
	err = s.scan([]byte{prefixFailure}, func(k, _ []byte) error {
		if a := at(k); a != nil {
			if a.failures == nil {
				a.failures = make(map[uint64]struct{})
			}
			a.failures[seqOf(k)] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.scan([]byte{prefixDead}, func(k, _ []byte) error {
		if a := at(k); a != nil {
			a.dead++
			if seq := seqOf(k); seq >= timerDeadBase {
				a.timerDead = seq - timerDeadBase + 1
			}
		}
		return nil
	})
}

// loadRecords reads the registry into s.reg and returns the actors by
// id.
func (s *Store) loadRecords() (map[uint64]*actor, error) {
	var n int
	if s.clean != nil {
		n = s.clean.Counters.Actors // a hint: growing the maps of a million is slow
		s.reg = newRegistry(n)
	}
	byID := make(map[uint64]*actor, n)
	behaviours := map[string]string{}
	err := s.scan([]byte{prefixActor}, func(k, v []byte) error {
		name := string(k[1:])
		rec, err := decodeActorRecord(v)
		if err != nil {
			return fmt.Errorf("actor record %q: %w", name, err)
		}
		rec.Behaviour = intern(behaviours, rec.Behaviour)
		a := newActor(name, rec)
		s.reg.add(a)
		byID[rec.ID] = a
		s.reg.sawID(rec.ID)
		return nil
	})
	return byID, err
}

// loadStateVersions sets every actor's module and schema from its state
// record.
func (s *Store) loadStateVersions(at func(k []byte) *actor) error {
	modules := map[string]string{}
	return s.scan([]byte{prefixState}, func(k, v []byte) error {
		a := at(k)
		if a == nil {
			return nil
		}
		st, err := decodeState(v)
		if err != nil {
			return fmt.Errorf("actor %q: state record: %w", a.name, err)
		}
		a.module, a.schema = intern(modules, st.Module), st.Schema
		a.stateStored.Store(true)
		return nil
	})
}

// intern returns the copy of s that seen holds, adding s if none.
func intern(seen map[string]string, s string) string {
	if v, ok := seen[s]; ok {
		return v
	}
	seen[s] = s
	return s
}

// lastSeqs returns, for every actor id with keys [prefix][id][seq], its
// largest seq: per such id, one seek to its last key and one past it.
func (s *Store) lastSeqs(prefix byte) (map[uint64]uint64, error) {
	return s.perID(prefix, func(it *pebble.Iterator, next []byte) (uint64, bool) {
		if !it.SeekLT(next) {
			return 0, false
		}
		return seqOf(it.Key()), true
	})
}

// firstSeqs returns, for every actor id with keys [prefix][id][seq], its
// smallest seq.
func (s *Store) firstSeqs(prefix byte) (map[uint64]uint64, error) {
	return s.perID(prefix, func(it *pebble.Iterator, _ []byte) (uint64, bool) {
		return seqOf(it.Key()), true
	})
}

// perID walks the key space prefix id by id: at the first key of each id,
// pick reads the value to keep (it may move the iterator; next is the
// first key of the following id), and the walk seeks to next.
func (s *Store) perID(prefix byte, pick func(it *pebble.Iterator, next []byte) (uint64, bool)) (map[uint64]uint64, error) {
	lower := []byte{prefix}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make(map[uint64]uint64)
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) < 17 {
			return nil, fmt.Errorf("key %x of space %q is %d bytes, want 17", k, prefix, len(k))
		}
		id := binary.BigEndian.Uint64(k[1:9])
		if id == ^uint64(0) {
			return nil, errors.New("actor id overflows the key space")
		}
		next := idKey(prefix, id+1)
		if v, ok := pick(it, next); ok {
			out[id] = v
		}
		valid = it.SeekGE(next)
	}
	return out, it.Error()
}
