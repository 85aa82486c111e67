package pebblestore

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// registry holds the in-memory view of every actor, and the actors being
// created (spawn.go), by name, in shards with a lock each. Every call of
// the store looks an actor up, and a first send to a virtual actor writes
// the maps twice (its creation, then its settling); with one lock for the
// whole registry those writes made every lookup of every other actor wait
// (a mutex profile of BenchmarkVirtualFirstSend had the producers waiting
// on it for a fifth of their time). A name's actor and its creation live
// in the same shard, so one shard lock sees both at once.
type registry struct {
	seed   maphash.Seed
	nextID atomic.Uint64 // the id the next registered actor gets
	shards [registryShards]registryShard
}

// registryShards is a power of two well above the cores a store runs on.
const registryShards = 64

type registryShard struct {
	mu       sync.RWMutex
	actors   map[string]*actor
	creating map[string]*creation
}

func newRegistry(sizeHint int) *registry {
	r := &registry{seed: maphash.MakeSeed()}
	r.nextID.Store(1)
	for i := range r.shards {
		r.shards[i].actors = make(map[string]*actor, sizeHint/registryShards)
		r.shards[i].creating = make(map[string]*creation)
	}
	return r
}

// shard is the shard that holds name.
func (r *registry) shard(name string) *registryShard {
	return &r.shards[maphash.String(r.seed, name)&(registryShards-1)]
}

// get returns the registered actor name, or nil.
func (r *registry) get(name string) *actor {
	sh := r.shard(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.actors[name]
}

// lookup returns the registered actor name and its creation in progress,
// read together.
func (r *registry) lookup(name string) (*actor, *creation) {
	sh := r.shard(name)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.actors[name], sh.creating[name]
}

// all returns every registered actor, in no order.
func (r *registry) all() []*actor {
	var out []*actor
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for _, a := range sh.actors {
			out = append(out, a)
		}
		sh.mu.RUnlock()
	}
	return out
}

// add registers a (at load, or once its creation is durable).
func (r *registry) add(a *actor) {
	sh := r.shard(a.name)
	sh.mu.Lock()
	sh.actors[a.name] = a
	sh.mu.Unlock()
}

// newID hands out an actor id; ids are unique, not necessarily dense.
func (r *registry) newID() uint64 { return r.nextID.Add(1) - 1 }

// sawID makes sure later ids are above id (at load).
func (r *registry) sawID(id uint64) {
	for {
		cur := r.nextID.Load()
		if id < cur || r.nextID.CompareAndSwap(cur, id+1) {
			return
		}
	}
}
