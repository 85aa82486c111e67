package pebblestore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/graft-host/graft/mailbox"
)

// actor is the in-memory view of one actor. Its counters are rebuilt from
// disk by Open; afterwards they move only after a successful write.
type actor struct {
	id   uint64
	name string

	mu       sync.Mutex
	rec      actorRecord
	module   string // module version of the committed state
	schema   uint32 // schema version of the committed state
	nextSeq  uint64 // next sequence number to hand out
	visible  uint64 // every seq <= visible is written (or abandoned)
	done     map[uint64]struct{}
	acked    uint64
	evicted  uint64 // idempotency ids through this seq are forgotten
	failures map[uint64]struct{}
	dead     uint64
	pending  map[string]*pendingID // ids being enqueued right now
	removed  bool
	inCommit bool
	// cond (on mu) wakes Remove, which waits for the writes in progress
	// to the actor to end; broadcast when one ends after removed is set.
	cond sync.Cond
	// timerDead is the next n of a timer dead letter (timerDeadBase + n).
	timerDead uint64
	// requeuing holds the dead letters being requeued, each closed when
	// its requeue ends (deadletter.go).
	requeuing map[uint64]chan struct{}

	// recent holds the encoded records of unacked messages written since
	// Open, by seq; see recent.go for why Read can trust it above
	// uncachedThrough.
	recent          map[uint64][]byte
	uncachedThrough uint64

	// stateStored is set once a state record may exist: at load when it
	// does, and before a commit that writes one is applied (so a reader
	// never takes "none" for a state on disk). State skips the engine
	// for an actor without: that read of a missing key was 8% of the CPU
	// of first sends to new virtual actors.
	stateStored atomic.Bool
}

// pendingID lets a second send with the same id wait for the first.
type pendingID struct {
	seq    uint64
	digest []byte // of its payload, nil when not checked
	tx     *txn   // the write it belongs to
	done   chan struct{}
	err    error
}

// actorRecord is what the registry key holds (record.go encodes it).
type actorRecord struct {
	ID        uint64    `json:"id"`
	Behaviour string    `json:"behaviour"`
	Status    string    `json:"status,omitempty"`
	Epoch     uint64    `json:"epoch"`
	CreatedAt time.Time `json:"created_at"`
	// Origin is mailbox.OriginVirtual or OriginSpawn; empty for Register
	// (OriginConfig), as in every record written before actors were made
	// at run time.
	Origin string `json:"origin,omitempty"`
}

// newActor is the in-memory view of a new or loaded actor, counters zero.
func newActor(name string, rec actorRecord) *actor {
	a := &actor{
		id: rec.ID, name: name, rec: rec, nextSeq: 1,
	}
	// done, failures and pending are made on first use: most of a large
	// registry's actors never need them, and three empty maps each would
	// be most of an idle actor's memory.
	a.cond.L = &a.mu
	return a
}

// busy reports whether a write to a is in progress: a reserved sequence
// number not finished, a commit, or a requeue of a dead letter. Callers
// hold a.mu.
func (a *actor) busy() bool {
	return a.inCommit || len(a.requeuing) > 0 || a.nextSeq-1-a.visible > uint64(len(a.done))
}

// finish records that the write of seq is over (committed or abandoned) and
// advances the readable prefix. It returns the new visible seq and whether
// it moved. Callers hold a.mu.
func (a *actor) finish(seq uint64) (uint64, bool) {
	if seq != a.visible+1 {
		if a.done == nil {
			a.done = make(map[uint64]struct{})
		}
		a.done[seq] = struct{}{}
		return a.visible, false
	}
	a.visible = seq
	for {
		if _, ok := a.done[a.visible+1]; !ok {
			break
		}
		delete(a.done, a.visible+1)
		a.visible++
	}
	return a.visible, true
}

func (a *actor) view() mailbox.Actor {
	return mailbox.Actor{
		Name:      a.name,
		Behaviour: a.rec.Behaviour,
		Status:    a.rec.Status,
		Module:    a.module,
		Schema:    a.schema,
		Epoch:     a.rec.Epoch,
		CreatedAt: a.rec.CreatedAt,
		Origin:    cmp.Or(a.rec.Origin, mailbox.OriginConfig),
	}
}

// lookup returns the registered actor or an error naming it.
func (s *Store) lookup(name string) (*actor, error) {
	if err := mailbox.CheckActorName(name); err != nil {
		return nil, err
	}
	a := s.reg.get(name)
	if a == nil {
		return nil, mailbox.UnknownActorError(name)
	}
	return a, nil
}

// scan calls fn for every key with the prefix, in order.
func (s *Store) scan(prefix []byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// Register implements mailbox.Registry.
func (s *Store) Register(ctx context.Context, name, behaviour string) (mailbox.Actor, error) {
	if err := s.enter(); err != nil {
		return mailbox.Actor{}, err
	}
	defer s.leave()
	if err := mailbox.CheckActorName(name); err != nil {
		return mailbox.Actor{}, err
	}
	if behaviour == "" {
		return mailbox.Actor{}, fmt.Errorf("register actor %q: behaviour name is empty: name the behaviour that handles it", name)
	}
	sh, err := s.awaitCreation(ctx, name)
	if err != nil {
		return mailbox.Actor{}, err
	}
	defer sh.mu.Unlock()
	if a := sh.actors[name]; a != nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.rec.Behaviour != behaviour {
			return mailbox.Actor{}, fmt.Errorf("register actor %q with behaviour %q: it has behaviour %q: %w", name, behaviour, a.rec.Behaviour, mailbox.ErrBehaviourMismatch)
		}
		return a.view(), nil
	}
	rec := actorRecord{ID: s.reg.newID(), Behaviour: behaviour, CreatedAt: time.Now().UTC()}
	if err := s.putActorRecord(name, rec, tierSend); err != nil {
		return mailbox.Actor{}, err
	}
	a := newActor(name, rec)
	sh.actors[name] = a
	return a.view(), nil
}

// awaitCreation locks name's registry shard, and returns it locked, once
// no write is creating name (spawn.go), so that Register sees the actor
// such a write creates, or its absence.
func (s *Store) awaitCreation(ctx context.Context, name string) (*registryShard, error) {
	sh := s.reg.shard(name)
	for {
		sh.mu.Lock()
		c := sh.creating[name]
		if c == nil {
			return sh, nil
		}
		sh.mu.Unlock()
		if err := waitCreation(ctx, c, name); err != nil {
			return nil, fmt.Errorf("register actor %q: %w", name, err)
		}
	}
}

func (s *Store) putActorRecord(name string, rec actorRecord, t tier) error {
	v := encodeActorRecord(rec)
	// No fsync of its own: the engine's log is sequential, so the record
	// is durable as soon as any later write that matters is (an enqueue
	// to the actor, a commit with this epoch), and a core that loses it in
	// a machine crash registers the actor again from its config. This keeps
	// registering and claiming 100,000 actors cheap.
	if err := s.set(actorKey(name), v, pebble.NoSync, t); err != nil {
		return fmt.Errorf("write actor %q: %w", name, err)
	}
	return nil
}

// Actor implements mailbox.Registry.
func (s *Store) Actor(ctx context.Context, name string) (mailbox.Actor, error) {
	if err := s.enter(); err != nil {
		return mailbox.Actor{}, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return mailbox.Actor{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.view(), nil
}

// Actors implements mailbox.Registry.
func (s *Store) Actors(ctx context.Context) ([]mailbox.Actor, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	list := s.reg.all()
	// Sorted as pointers, then viewed: moving a million views about in
	// the sort cost more than making them.
	slices.SortFunc(list, func(x, y *actor) int { return strings.Compare(x.name, y.name) })
	out := make([]mailbox.Actor, 0, len(list))
	for _, a := range list {
		a.mu.Lock()
		out = append(out, a.view())
		a.mu.Unlock()
	}
	return out, nil
}

// SetStatus implements mailbox.Registry.
func (s *Store) SetStatus(ctx context.Context, name, status string) error {
	return s.updateRecord(name, func(r *actorRecord) { r.Status = status })
}

// Claim implements mailbox.Registry. The epoch is kept in memory and
// written with nothing: the store's file lock makes this process its only
// writer, so an epoch has only this process's actor goroutines to fence,
// and the open generation (nextGeneration) puts every epoch of this open
// above those of earlier ones. The first start of each of a million
// actors, or of every new virtual actor, thus costs no write.
func (s *Store) Claim(ctx context.Context, name string) (uint64, error) {
	var epoch uint64
	err := s.withLive(name, func(a *actor) error {
		a.rec.Epoch = max(a.rec.Epoch, s.epochBase) + 1
		epoch = a.rec.Epoch
		return nil
	})
	return epoch, err
}

// nextGeneration bumps the open generation durably and sets the epochs'
// base from it. Open calls it once the store is verified, so that a store
// refused as damaged is left as it was.
func (s *Store) nextGeneration() error {
	var gen uint64
	v, closer, err := s.db.Get(generationKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("read the open generation: %w", err)}
	default:
		ok := len(v) == 8
		if ok {
			gen = binary.BigEndian.Uint64(v)
		}
		_ = closer.Close()
		if !ok || gen >= 1<<31 {
			return &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("the open generation is %d bytes (%d), want 8 and below 2^31", len(v), gen)}
		}
	}
	gen++
	if err := s.set(generationKey, binary.BigEndian.AppendUint64(nil, gen), pebble.Sync, tierSend); err != nil {
		return fmt.Errorf("store %s: write the open generation: %w", s.path, err)
	}
	s.epochBase = gen << 32
	return nil
}

func (s *Store) updateRecord(name string, change func(*actorRecord)) error {
	return s.withLive(name, func(a *actor) error {
		rec := a.rec
		change(&rec)
		if err := s.putActorRecord(name, rec, tierCommit); err != nil {
			return err
		}
		a.rec = rec
		return nil
	})
}

// withLive runs fn on the actor named, holding its lock, unless the store
// is closed or the actor unknown or removed.
func (s *Store) withLive(name string, fn func(a *actor) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.removed {
		return mailbox.UnknownActorError(name)
	}
	return fn(a)
}

// State implements mailbox.Registry.
func (s *Store) State(ctx context.Context, name string) (mailbox.State, error) {
	if err := s.enter(); err != nil {
		return mailbox.State{}, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return mailbox.State{}, err
	}
	if !a.stateStored.Load() {
		return mailbox.State{}, nil
	}
	v, c, err := s.db.Get(idKey(prefixState, a.id))
	if errors.Is(err, pebble.ErrNotFound) {
		return mailbox.State{}, nil
	}
	if err != nil {
		return mailbox.State{}, fmt.Errorf("read state of actor %q: %w", name, err)
	}
	defer c.Close()
	st, err := decodeState(v)
	if err != nil {
		return mailbox.State{}, &mailbox.CorruptError{Path: s.path, Err: fmt.Errorf("state of actor %q: %w", name, err)}
	}
	return st, nil
}

// Stats implements mailbox.Registry.
func (s *Store) Stats(name string) (mailbox.Stats, error) {
	if err := s.enter(); err != nil {
		return mailbox.Stats{}, err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return mailbox.Stats{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return mailbox.Stats{Acked: a.acked, Last: a.visible, Depth: a.visible - a.acked, DeadLetters: a.dead}, nil
}

// Range implements mailbox.Registry.
func (s *Store) Range(ctx context.Context, fn func(mailbox.Actor) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	list := s.reg.all()
	for _, a := range list {
		a.mu.Lock()
		v, removed := a.view(), a.removed
		a.mu.Unlock()
		if !removed && !fn(v) {
			return nil
		}
	}
	return nil
}

// Backlog implements mailbox.Registry.
func (s *Store) Backlog(ctx context.Context) ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []string
	for _, a := range s.reg.all() {
		a.mu.Lock()
		if a.visible > a.acked && !a.removed {
			out = append(out, a.name)
		}
		a.mu.Unlock()
	}
	return out, nil
}

// Remove implements mailbox.Registry. It marks the actor removed (new
// writes to it fail), waits for the writes in progress to it to end, and
// then deletes every key of the actor in one synced batch: its id ranges,
// its timers, its registry record, and the timers set from outside whose
// target it is (schedule.go). Holding fireMu keeps FireDue from writing
// for it meanwhile.
func (s *Store) Remove(ctx context.Context, name string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	a, err := s.lookup(name)
	if err != nil {
		return err
	}
	s.fireMu.Lock()
	defer s.fireMu.Unlock()
	a.mu.Lock()
	if a.removed {
		a.mu.Unlock()
		return mailbox.UnknownActorError(name)
	}
	a.removed = true
	for a.busy() {
		a.cond.Wait()
	}
	a.mu.Unlock()
	tx := s.newTxn()
	err = unscheduleIn(tx, name)
	if err == nil {
		err = s.removeKeys(tx.b, a)
	}
	tx.end(err)
	if err != nil {
		a.mu.Lock()
		a.removed = false
		a.mu.Unlock()
		return fmt.Errorf("remove actor %q: %w", name, err)
	}
	s.timers.dropOwner(a.id)
	a.mu.Lock()
	s.forgetAll(a)
	a.mu.Unlock()
	return nil
}

// removeKeys adds the deletion of every key of a to b, writes b synced
// and drops a from the registry.
func (s *Store) removeKeys(b *pebble.Batch, a *actor) error {
	err := s.scan(idKey(prefixTimerOf, a.id), func(k, v []byte) error {
		if len(v) != 8 {
			return nil // the range deletion below takes it anyway
		}
		return b.Delete(timerKey(int64(binary.BigEndian.Uint64(v)), a.id, string(k[9:])), nil)
	})
	if err != nil {
		return err
	}
	for _, p := range []byte{prefixState, prefixCursor, prefixQueue, prefixFailure, prefixIDIndex, prefixIDOrder, prefixOutcome, prefixDead, prefixTimerOf, prefixHandled} {
		k := idKey(p, a.id)
		if err := b.DeleteRange(k, prefixEnd(k), nil); err != nil {
			return err
		}
	}
	if err := b.Delete(actorKey(a.name), nil); err != nil {
		return err
	}
	sh := s.reg.shard(a.name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := s.apply(b, pebble.Sync, tierCommit); err != nil {
		return err
	}
	delete(sh.actors, a.name)
	return nil
}
