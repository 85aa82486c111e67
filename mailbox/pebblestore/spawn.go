package pebblestore

import (
	"context"
	"fmt"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// Actors made at run time. A virtual actor (Options.Virtual) is created by
// the first message sent to it, and a spawned one by a SpawnRequest; either
// way its registry record goes into the batch that carries the message (or
// the handler's commit), so creating it costs no write of its own, and a
// crash either created it with its first message or did neither.
//
// Until that batch is durable the actor is a creation: it is in its
// registry shard's creating map, not its actors map (registry.go; both
// under the shard's lock), so readers, Claim and Register do not
// see it yet, and another write to the same name waits for the batch (then
// finds the actor, or creates it itself if the batch failed). So concurrent
// first sends create the actor once, and no message is ever durable in a
// mailbox whose registry record is not.
//
// No deadlock: a write resolves every name it needs, in name order, before
// it reserves any sequence number (Commit's writeSends, FireDue's fire), and
// waits only for creations of names it has not passed yet; a write that
// owns a creation and waits on something else waits only for a
// reservation, which writes in their resolving step never hold.

// creation is an actor that a txn is creating.
type creation struct {
	a         *actor
	behaviour string
	tx        *txn
	done      chan struct{} // closed when tx ends
}

// resolve returns the actor named name for a write in tx. An actor that
// does not exist is created in tx's batch when spawn asks for it (origin
// "spawn") or Options.Virtual resolves the name (origin "virtual"), and
// created reports it; for a name that is neither it returns nil and no
// error. It waits for a creation of the same name by another write in
// progress.
func (s *Store) resolve(ctx context.Context, tx *txn, name string, spawn *mailbox.SpawnRequest) (a *actor, created bool, err error) {
	if err := mailbox.CheckActorName(name); err != nil {
		return nil, false, err
	}
	for {
		a, c := s.reg.lookup(name)
		switch {
		case a != nil:
			return a, false, nil
		case c != nil && c.tx == tx:
			return c.a, false, nil
		case c != nil:
			if err := waitCreation(ctx, c, name); err != nil {
				return nil, false, err
			}
			continue
		}
		behaviour, origin := s.creatable(name, spawn)
		if behaviour == "" {
			return nil, false, nil
		}
		a, err := s.create(tx, name, behaviour, origin)
		if err != nil || a != nil {
			return a, a != nil, err
		}
		// Another write began creating it meanwhile: look again.
	}
}

// creatable says with which behaviour and origin name may be created.
func (s *Store) creatable(name string, spawn *mailbox.SpawnRequest) (behaviour, origin string) {
	if spawn != nil {
		return spawn.Behaviour, mailbox.OriginSpawn
	}
	if s.opts.Virtual != nil {
		if b, ok := s.opts.Virtual(name); ok && b != "" {
			return b, mailbox.OriginVirtual
		}
	}
	return "", ""
}

// create registers name as a creation of tx and adds its registry record to
// tx's batch; nil if the name was taken meanwhile.
func (s *Store) create(tx *txn, name, behaviour, origin string) (*actor, error) {
	sh := s.reg.shard(name)
	sh.mu.Lock()
	if sh.actors[name] != nil || sh.creating[name] != nil {
		sh.mu.Unlock()
		return nil, nil
	}
	rec := actorRecord{ID: s.reg.newID(), Behaviour: behaviour, Origin: origin, CreatedAt: time.Now().UTC()}
	v := encodeActorRecord(rec)
	a := newActor(name, rec)
	c := &creation{a: a, behaviour: behaviour, tx: tx, done: make(chan struct{})}
	sh.creating[name] = c
	sh.mu.Unlock()
	tx.creations = append(tx.creations, c)
	if err := tx.b.Set(actorKey(name), v, nil); err != nil {
		return nil, fmt.Errorf("create actor %q: %w", name, err)
	}
	return a, nil
}

// waitCreation waits for another write's creation of name to end.
func waitCreation(ctx context.Context, c *creation, name string) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actor %q: waiting for the write that creates it: %w", name, ctx.Err())
	}
}

// settleCreations ends tx's creations: with err nil the actors join the
// registry; otherwise they never existed (their ids are simply unused).
// Writes waiting for them go on either way.
func (s *Store) settleCreations(cs []*creation, err error) {
	for _, c := range cs {
		sh := s.reg.shard(c.a.name)
		sh.mu.Lock()
		delete(sh.creating, c.a.name)
		if err == nil {
			sh.actors[c.a.name] = c.a
		}
		sh.mu.Unlock()
	}
	for _, c := range cs {
		if err != nil {
			c.a.mu.Lock()
			c.a.removed = true // its reservations finish without a Notify
			c.a.mu.Unlock()
		}
		close(c.done)
	}
}

// spawnConflict returns a *SpawnConflictError if a, which exists, has
// another behaviour than req asks for.
func spawnConflict(a *actor, req *mailbox.SpawnRequest) error {
	a.mu.Lock()
	existing := a.rec.Behaviour
	a.mu.Unlock()
	if existing == req.Behaviour {
		return nil
	}
	return &mailbox.SpawnConflictError{Name: req.Name, Existing: existing, Requested: req.Behaviour}
}

// Spawn implements mailbox.Registry: the registry record and the Init
// message are one synced batch.
func (s *Store) Spawn(ctx context.Context, req mailbox.SpawnRequest) (_ mailbox.Actor, created bool, err error) {
	var tx *txn
	defer func() { s.announce(tx) }()
	if err := s.enter(); err != nil {
		return mailbox.Actor{}, false, err
	}
	defer s.leave()
	if err := mailbox.CheckSpawn(&req, s.opts.MaxMessageSize); err != nil {
		return mailbox.Actor{}, false, err
	}
	tx = s.newTxn()
	a, created, err := s.resolve(ctx, tx, req.Name, &req)
	if err == nil && !created {
		tx.end(nil)
		if err := spawnConflict(a, &req); err != nil {
			return mailbox.Actor{}, false, err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.view(), false, nil
	}
	if err == nil && req.Init != nil {
		_, _, err = tx.send(ctx, a, &mailbox.Message{Payload: req.Init, EnqueuedAt: time.Now()}, nil)
	}
	if err == nil {
		err = s.apply(tx.b, s.writeOpts, tierSend)
	}
	tx.end(err)
	if err != nil {
		return mailbox.Actor{}, false, fmt.Errorf("spawn actor %q: %w", req.Name, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.view(), created, nil
}
