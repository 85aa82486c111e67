package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graft-host/graft/mailbox"
)

// Register implements mailbox.Registry.
func (s *Store) Register(ctx context.Context, name, behaviour string) (mailbox.Actor, error) {
	if err := s.enter(); err != nil {
		return mailbox.Actor{}, err
	}
	defer s.leave()
	if err := mailbox.CheckActorName(name); err != nil {
		return mailbox.Actor{}, fmt.Errorf("register: %w", err)
	}
	if behaviour == "" {
		return mailbox.Actor{}, fmt.Errorf("register actor %q: behaviour name is empty: name the behaviour that handles it", name)
	}
	_, err := s.update(ctx, "register actor "+name, func(t *txn) error {
		rec, exists, err := s.readActor(ctx, t, name)
		if err != nil || exists {
			if err == nil && rec.Behaviour != behaviour {
				err = fmt.Errorf("register actor %q with behaviour %q: it has behaviour %q: %w", name, behaviour, rec.Behaviour, mailbox.ErrBehaviourMismatch)
			}
			return err
		}
		return s.create(t, name, actorRecord{Behaviour: behaviour, Created: time.Now().UTC()})
	})
	if err != nil {
		return mailbox.Actor{}, err
	}
	return s.actor(ctx, name)
}

// readActor reads an actor's record within t.
func (s *Store) readActor(ctx context.Context, t *txn, name string) (actorRecord, bool, error) {
	k := s.k.actor(name)
	if err := t.get(ctx, k); err != nil {
		return actorRecord{}, false, err
	}
	v, ok := t.value(k)
	if !ok {
		return actorRecord{}, false, nil
	}
	var rec actorRecord
	err := s.decode(k, v, &rec)
	return rec, true, err
}

// create queues the keys of a new actor in t: its record, an empty
// cursor and a head at 0 (appendMsg then moves the head in the same
// transaction). The caller has read the record's key (absent) within t,
// which guards the creation.
func (s *Store) create(t *txn, name string, rec actorRecord) error {
	v, err := encode(rec)
	if err != nil {
		return err
	}
	t.put(s.k.actor(name), v)
	if err := s.putCursor(t, name, cursorRecord{}); err != nil {
		return err
	}
	if t.heads == nil {
		t.heads = make(map[string]uint64)
	}
	if t.created == nil {
		t.created = make(map[string]string)
	}
	t.heads[name] = 0
	t.created[name] = rec.Behaviour
	t.put(s.k.head(name), uintValue(0))
	return nil
}

// actor reads one actor's full record: registry, epoch and cursor.
func (s *Store) actor(ctx context.Context, name string) (mailbox.Actor, error) {
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(s.k.actor(name)), clientv3.OpGet(s.k.epoch(name)), clientv3.OpGet(s.k.cursor(name)),
	).Commit()
	if err != nil {
		return mailbox.Actor{}, s.wrap("read actor "+name, err)
	}
	val := func(i int) []byte {
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			return kvs[0].Value
		}
		return nil
	}
	if val(0) == nil {
		return mailbox.Actor{}, fmt.Errorf("actor %q: %w", name, mailbox.ErrUnknownActor)
	}
	return s.assemble(name, val(0), val(1), val(2))
}

// assemble builds a mailbox.Actor from its record, epoch and cursor.
func (s *Store) assemble(name string, rec, epoch, cursor []byte) (mailbox.Actor, error) {
	var r actorRecord
	if err := s.decode(s.k.actor(name), rec, &r); err != nil {
		return mailbox.Actor{}, err
	}
	ep, err := s.decodeUint(s.k.epoch(name), epoch)
	if err != nil {
		return mailbox.Actor{}, err
	}
	var cur cursorRecord
	if cursor != nil {
		if err := s.decode(s.k.cursor(name), cursor, &cur); err != nil {
			return mailbox.Actor{}, err
		}
	}
	origin := r.Origin
	if origin == "" {
		origin = mailbox.OriginConfig
	}
	return mailbox.Actor{Name: name, Behaviour: r.Behaviour, Status: r.Status, Module: cur.Module, Schema: cur.Schema,
		Epoch: ep, CreatedAt: r.Created, Origin: origin}, nil
}

// Actor implements mailbox.Registry.
func (s *Store) Actor(ctx context.Context, name string) (mailbox.Actor, error) {
	if err := s.enter(); err != nil {
		return mailbox.Actor{}, err
	}
	defer s.leave()
	return s.actor(ctx, name)
}

// Actors implements mailbox.Registry.
func (s *Store) Actors(ctx context.Context) ([]mailbox.Actor, error) {
	out := []mailbox.Actor{}
	err := s.Range(ctx, func(a mailbox.Actor) bool { out = append(out, a); return true })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b mailbox.Actor) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Range implements mailbox.Registry: the records, epochs and cursors are
// read at one revision, so the listing is one consistent snapshot.
func (s *Store) Range(ctx context.Context, fn func(mailbox.Actor) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	epochs, cursors := map[string][]byte{}, map[string][]byte{}
	collect := func(kind string, into map[string][]byte) func(string, []byte, int64) error {
		return func(key string, v []byte, _ int64) error {
			name, _, _ := s.k.splitKey(kind, key)
			into[name] = v
			return nil
		}
	}
	rev, err := s.rangeAll(ctx, s.k.prefix+kindEpoch, 0, collect(kindEpoch, epochs))
	if err == nil {
		_, err = s.rangeAll(ctx, s.k.prefix+kindCursor, rev, collect(kindCursor, cursors))
	}
	if err != nil {
		return fmt.Errorf("list actors: %w", err)
	}
	stop := errors.New("stop")
	_, err = s.rangeAll(ctx, s.k.prefix+kindActor, rev, func(key string, v []byte, _ int64) error {
		name, _, _ := s.k.splitKey(kindActor, key)
		a, err := s.assemble(name, v, epochs[name], cursors[name])
		if err != nil {
			return err
		}
		if !fn(a) {
			return stop
		}
		return nil
	})
	if errors.Is(err, stop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list actors: %w", err)
	}
	return nil
}

// SetStatus implements mailbox.Registry.
func (s *Store) SetStatus(ctx context.Context, name, status string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	_, err := s.update(ctx, "set the status of actor "+name, func(t *txn) error {
		rec, ok, err := s.readActor(ctx, t, name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("set the status of actor %q: %w", name, mailbox.ErrUnknownActor)
		}
		if rec.Status == status {
			return nil
		}
		rec.Status = status
		v, err := encode(rec)
		if err != nil {
			return err
		}
		t.put(s.k.actor(name), v)
		return nil
	})
	return err
}

// Claim implements mailbox.Registry: the epoch is a durable counter,
// e/name, kept when the actor is removed, so an epoch is never handed out
// twice for a name, by any process.
func (s *Store) Claim(ctx context.Context, name string) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var epoch uint64
	_, err := s.update(ctx, "claim actor "+name, func(t *txn) error {
		ek := s.k.epoch(name)
		if err := t.get(ctx, s.k.actor(name), ek); err != nil {
			return err
		}
		if _, ok := t.value(s.k.actor(name)); !ok {
			return fmt.Errorf("claim actor %q: %w", name, mailbox.ErrUnknownActor)
		}
		if err := s.checkOwnership(ctx, t, name); err != nil {
			return err
		}
		v, _ := t.value(ek)
		cur, err := s.decodeUint(ek, v)
		if err != nil {
			return err
		}
		epoch = cur + 1
		t.put(ek, uintValue(epoch))
		return nil
	})
	return epoch, err
}

// State implements mailbox.Registry.
func (s *Store) State(ctx context.Context, name string) (mailbox.State, error) {
	if err := s.enter(); err != nil {
		return mailbox.State{}, err
	}
	defer s.leave()
	resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(s.k.actor(name), clientv3.WithKeysOnly()), clientv3.OpGet(s.k.state(name))).Commit()
	if err != nil {
		return mailbox.State{}, s.wrap("read state of actor "+name, err)
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return mailbox.State{}, fmt.Errorf("read state of actor %q: %w", name, mailbox.ErrUnknownActor)
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return mailbox.State{}, nil
	}
	var st mailbox.State
	if err := s.decode(s.k.state(name), kvs[0].Value, &st); err != nil {
		return mailbox.State{}, err
	}
	return st, nil
}

// Stats implements mailbox.Registry, from the cache.
func (s *Store) Stats(name string) (mailbox.Stats, error) {
	if err := s.enter(); err != nil {
		return mailbox.Stats{}, err
	}
	defer s.leave()
	c, ok := s.cache.get(name)
	if !ok {
		return mailbox.Stats{}, fmt.Errorf("stats of actor %q: %w", name, mailbox.ErrUnknownActor)
	}
	return mailbox.Stats{Acked: c.acked, Last: c.last, Depth: c.last - min(c.acked, c.last), DeadLetters: c.dead}, nil
}

// Backlog implements mailbox.Registry, from the cache.
func (s *Store) Backlog(context.Context) ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	return s.cache.backlog(), nil
}

// OwnershipGuard says, for a cluster of cores, which key holds an actor's
// ownership and under which lease this core holds it; ok false: this core
// holds no lease.
type OwnershipGuard func(name string) (key string, lease int64, ok bool)

// GuardClaims makes every Claim check, in its transaction, that this core
// holds the actor's ownership key under its lease (package cluster), and
// fail with mailbox.ErrNotOwner otherwise: a core whose view of the owners
// lags (woken after its lease expired, say) then cannot claim an actor
// and fence the core that owns it. Call it before the first Claim.
func (s *Store) GuardClaims(guard OwnershipGuard) { s.claimGuard = guard }

// checkOwnership reads the actor's ownership key within t (so the claim
// is guarded by it) and checks that this core holds it.
func (s *Store) checkOwnership(ctx context.Context, t *txn, name string) error {
	if s.claimGuard == nil {
		return nil
	}
	key, lease, ok := s.claimGuard(name)
	if !ok {
		return fmt.Errorf("claim actor %q: this core holds no cluster lease: %w", name, mailbox.ErrNotOwner)
	}
	if err := t.get(ctx, key); err != nil {
		return err
	}
	if kv := t.reads[key]; kv.mod == 0 || kv.lease != lease {
		if !t.linearizable {
			return errRetry // the nearest member may lag: ask the leader
		}
		return fmt.Errorf("claim actor %q: %w", name, mailbox.ErrNotOwner)
	}
	return nil
}
